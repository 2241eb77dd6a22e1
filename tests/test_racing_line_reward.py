"""The racing_line reward: highest on the line at its speed, as a built-in and as the shipped example file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.env.rewards import PER_CAR_BUILTIN_REWARDS, line_distance_and_speed, load_reward_function, racing_line_score
from control.sim.base import DEEPRACER_LIMITS
from control.sim.raceline import racing_line
from control.sim.raceline_cli import write_line
from control.track.track import Track

EXAMPLE = Path(__file__).resolve().parents[1] / "resources" / "rewards" / "racing_line_reward.py"


@pytest.fixture(scope="module")
def oval_line(tmp_path_factory):
    cache = tmp_path_factory.mktemp("raceline_cache")
    track = Track.load("oval")
    return track, racing_line(track, DEEPRACER_LIMITS, cache_dir=cache)


def _params(track: Track, x: float, y: float, speed: float) -> dict:
    return {"x": x, "y": y, "speed": speed, "track_width": float(track.width_m[0]), "waypoints": track.waypoints_list(),
            "is_offtrack": False, "is_crashed": False}


def _normals(line_xy: np.ndarray) -> np.ndarray:
    tangent = np.roll(line_xy, -1, axis=0) - np.roll(line_xy, 1, axis=0)
    tangent /= np.hypot(*tangent.T)[:, None]
    return np.c_[-tangent[:, 1], tangent[:, 0]]


def _assert_highest_on_line_at_its_speed(reward, track: Track, line) -> None:
    normals = _normals(line.xy_m)
    for i in range(0, len(line.xy_m), 37):
        (x, y), v = line.xy_m[i], float(line.speed_mps[i])
        best = reward(_params(track, x, y, v))
        assert best == pytest.approx(1.0, abs=1e-6)
        for offset_m in (-0.2, -0.05, 0.05, 0.2):
            px, py = line.xy_m[i] + offset_m * normals[i]
            assert reward(_params(track, px, py, v)) < best
        for dv in (-1.0, -0.2, 0.2, 1.0):
            if 0 <= v + dv:
                assert reward(_params(track, x, y, v + dv)) < best


def test_score_is_one_on_the_line_at_its_speed_and_a_slow_lap_never_pays_more():
    assert racing_line_score(0.0, 3.0, 3.0, 1.0) == pytest.approx(1.0)
    assert racing_line_score(0.5, 3.0, 3.0, 1.0) == pytest.approx(0.0)
    # Reward per metre (score / speed) grows with speed up to the line's speed.
    speeds = np.linspace(0.5, 3.0, 6)
    per_metre = racing_line_score(0.0, speeds, 3.0, 1.0) / speeds
    assert np.all(np.diff(per_metre) > 0)


def test_distance_to_the_line_is_exact_between_points():
    square = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    d, v = line_distance_and_speed(np.array([0.5, 0.5]), np.array([0.2, -0.1]), square, np.array([1.0, 3.0, 3.0, 1.0]))
    np.testing.assert_allclose(d, [0.2, 0.1])
    np.testing.assert_allclose(v, [2.0, 2.0])


def test_builtin_racing_line_is_highest_on_the_line_at_its_speed(oval_line, monkeypatch, tmp_path):
    track, line = oval_line
    monkeypatch.setenv("RACELINE_CACHE_DIR", str(tmp_path))
    fn = load_reward_function("racing_line")
    waypoints = track.waypoints_list()  # the env hands the same list every step

    def reward(p):
        return fn({**p, "waypoints": waypoints})["reward_function"]

    _assert_highest_on_line_at_its_speed(reward, track, line)
    assert "racing_line" in PER_CAR_BUILTIN_REWARDS


def test_env_trains_on_the_racing_line_reward(monkeypatch, tmp_path):
    monkeypatch.setenv("RACELINE_CACHE_DIR", str(tmp_path))
    env = RacingEnv({"track": "oval", "reward": "racing_line", "start": {"mode": "fixed"}})
    env.reset(seed=0)
    rewards = [env.step(np.array([0.0, 1.0], dtype=np.float32))[1] for _ in range(10)]
    assert all(np.isfinite(rewards)) and max(rewards) > 0
    env.close()


def test_example_reward_file_loads_a_community_line_file(oval_line, tmp_path, monkeypatch):
    track, line = oval_line
    write_line(line, tmp_path / "line.npy")
    monkeypatch.setenv("RACING_LINE_FILE", str(tmp_path / "line.npy"))
    fn = load_reward_function(str(EXAMPLE))
    _assert_highest_on_line_at_its_speed(lambda p: fn(p)["reward_function"], track, line)


def test_batched_racing_line_scores_each_car_against_its_own_tracks_line(monkeypatch, tmp_path):
    """The env's vectorised path gives every car exactly what the per-car (reward-file API) path gives it."""
    from control.env.rewards import racing_line_reward, racing_line_rewards

    monkeypatch.setenv("RACELINE_CACHE_DIR", str(tmp_path))
    tracks = [Track.load("oval"), Track.load("hairpins")]
    waypoints = [t.waypoints_list() for t in tracks]
    rng = np.random.default_rng(0)
    cars = [(k, tracks[k].center_m[j] + rng.normal(0.0, 0.1, 2), rng.uniform(0.5, 4.0))
            for k, j in [(0, 3), (1, 10), (0, 40), (1, 77), (1, 120), (0, 90)]]
    params = {"x": np.array([c[1][0] for c in cars]), "y": np.array([c[1][1] for c in cars]),
              "speed": np.array([c[2] for c in cars]),
              "track_width": np.array([float(tracks[c[0]].width_m[0]) for c in cars])}
    batched = racing_line_rewards(params, [waypoints[c[0]] for c in cars])["racing_line"]
    for i, (k, _, _) in enumerate(cars):
        one = {key: float(v[i]) for key, v in params.items()} | {"waypoints": waypoints[k]}
        assert batched[i] == pytest.approx(racing_line_reward(one)["racing_line"], rel=1e-12, abs=1e-12)
    assert len(set(np.round(batched, 9))) == len(cars)  # the cars really differ


def test_vector_env_rewards_racing_line_per_car_as_the_reward_file_api_would(monkeypatch, tmp_path):
    from control.env.rewards import racing_line_reward
    from control.env.vector_env import RacingVectorEnv

    monkeypatch.setenv("RACELINE_CACHE_DIR", str(tmp_path))
    env = RacingVectorEnv({"track": "oval", "reward": "racing_line", "start": {"mode": "random"}}, num_envs=4)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        _, rewards, terminated, truncated, _ = env.step(rng.uniform(-0.3, 1.0, (4, 2)).astype(np.float32))
        for i in np.flatnonzero(~(terminated | truncated)):
            expected = racing_line_reward(env.race.car_params(int(i), waypoints=True))["racing_line"]
            assert rewards[i] == pytest.approx(expected, rel=1e-9, abs=1e-9)
    env.close()
