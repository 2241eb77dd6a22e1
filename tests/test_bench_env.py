"""The env benchmark's logic: what it counts, what it compares, what it prints (no timing asserted)."""
import json
import sys

import numpy as np
import pytest

from control.bench import cli, env_bench
from control.bench.env_bench import EnvBenchResult, EnvSpec, measure_env
from control.env.racing_env import RacingEnv
from control.errors import UserError
from control.sim.lap_time import reference_for_env_config
from control.track.track import Track, bundled_track_names


def _five_step_episodes() -> RacingEnv:
    """Episodes that end by truncation after exactly 5 steps, whatever the random actions do."""
    return RacingEnv(
        {
            "max_episode_steps": 5,
            "termination": {"off_track": False, "reversed": False, "immobilized_steps": 1000},
        }
    )


def test_measure_env_counts_steps_and_times_resets_apart():
    result = measure_env(EnvSpec("five", "lidar", _five_step_episodes), max_steps=23, max_seconds=60.0)
    assert result.steps == 23
    assert result.resets == 4  # after steps 5, 10, 15, 20: resets are counted apart from steps
    assert result.step_time_s > 0 and result.reset_time_s > 0
    assert result.steps_per_s == pytest.approx(23 / result.step_time_s)
    assert result.observation_shape == (34,)  # 32 rays + speed + steering


def test_measure_env_stops_at_the_time_budget():
    result = measure_env(EnvSpec("five", "lidar", _five_step_episodes), max_steps=10**9, max_seconds=1e-12)
    assert result.steps == 1


def test_ratios_pair_lidar_with_lidar_and_camera_with_camera():
    def r(name, kind, steps):
        return EnvBenchResult(name, kind, (1,), steps, 1.0, 0, 0.0)

    ours = [r("ours lidar", "lidar", 10_000), r("ours camera", "camera", 5_000)]
    peers = [r("peer lidar", "lidar", 500), r("peer gray", "camera", 250)]
    assert env_bench.ratios(ours, peers) == {"lidar": 20.0, "camera": 20.0}
    assert env_bench.ratios(ours, peers[:1]) == {"lidar": 20.0}
    table = env_bench.format_throughput(ours, peers, None)
    assert "20.0x" in table and "10,000" in table and "peer gray" in table


def test_our_envs_run_on_the_largest_bundled_track():
    names = bundled_track_names()
    longest = max(names, key=lambda n: Track.load(n).length_m)
    assert env_bench.largest_bundled_track() == longest
    lidar, camera = env_bench.our_env_specs(longest)
    lidar_env, camera_env = lidar.make(), camera.make()
    assert lidar_env.track.name == longest and lidar_env.observation_space.shape == (32 + 2,)
    assert camera_env.observation_space.shape == (120, 160, 1)


def test_lap_time_rows_cover_every_bundled_track():
    rows = env_bench.lap_time_rows()
    assert [r.track for r in rows] == bundled_track_names()
    for row in rows:
        ref = reference_for_env_config(Track.load(row.track))
        assert row.lap_time_s == pytest.approx(ref.lap_time_s)
        assert row.length_m == pytest.approx(Track.load(row.track).length_m)
    assert row.track in env_bench.format_lap_times(rows)


def test_peer_is_skipped_with_an_install_hint_when_highway_env_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "highway_env", None)  # makes `import highway_env` raise ImportError
    monkeypatch.setenv("SDL_VIDEODRIVER", "offscreen")  # restored after the test
    status = env_bench.peer_env_specs()
    assert status.specs == []
    assert "highway-env" in status.skipped_reason and "requirements-bench.txt" in status.skipped_reason


def test_peer_grayscale_frames_are_not_blank(monkeypatch):
    pytest.importorskip("highway_env", reason="highway-env is not installed (pip install -r requirements-bench.txt)")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # the bench must replace it: "dummy" renders blank frames
    status = env_bench.peer_env_specs()
    assert status.skipped_reason is None
    specs = {spec.kind: spec for spec in status.specs}
    env = specs["camera"].make()
    try:
        obs, _ = env.reset(seed=0)
        obs, *_ = env.step(env.action_space.sample())
    finally:
        env.close()
    # pygame's "dummy" driver gives uniform frames; "offscreen" draws the road.
    assert obs.shape[-2:] == (160, 120) and np.std(obs) > 1.0


def test_cli_selects_benchmarks_and_rejects_unknown_names(capsys):
    assert [b.name for b in cli.selected_benchmarks([])] == [b.name for b in cli.BENCHMARKS.values() if b.cheap]
    assert [b.name for b in cli.selected_benchmarks(["env", "env"])] == ["env"]
    with pytest.raises(UserError, match="did you mean 'env'"):
        cli.selected_benchmarks(["envv"])
    assert cli.main(["envv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown benchmark 'envv'" in err


def test_cli_env_benchmark_prints_tables_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert cli.main(["env", "--steps", "20", "--seconds", "5", "--no-peers", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RacerVLidar-v0" in text and "RacerCamera-v0" in text and "Lap-time reference" in text
    results = json.loads(out.read_text())["env"]
    assert [r["steps"] for r in results["ours"]] == [20, 20]
    assert results["peers"] == [] and "skipped" in results["peer_skipped_reason"]
    assert {r["track"] for r in results["lap_time_reference"]} == set(bundled_track_names())
    # The batched table: both envs at every N, env steps counted N per batch step; the user reward file apart.
    # The race types after them: 6 boxes and 3 bots at N = 16 and 64, each costed against the time trial of the same N.
    assert [(r["name"], r["num_envs"]) for r in results["vector"]] == [
        (kind, n) for kind in ("vlidar 32 rays", "vlidar 32 rays, lean infos", "camera 160x120 gray") for n in env_bench.BATCH_SIZES] + [
        (kind, n) for kind in ("vlidar 32 rays, 6 obstacles", "vlidar 32 rays, 3 bots") for n in (16, 64)]
    assert [(c["race"], c["num_envs"]) for c in results["race_costs"]] == [
        (race, n) for race in ("object_avoidance", "head_to_bot") for n in (16, 64)]
    assert "object_avoidance (6 obstacles): objects cost" in text and "(limit 30 %): " in text
    assert all(r["env_steps"] % r["num_envs"] == 0 and r["env_steps"] >= r["num_envs"] for r in results["vector"])
    assert "Batched env throughput" in text and "user reward file" in text
    assert results["user_reward_file"]["user_file"]["env_steps"] >= env_bench.USER_REWARD_CARS


def test_noop_baseline_follows_the_racing_env_onto_rllibs_vector_entry_point():
    """The train bench's no-op baseline runs with the same config: vector_entry_point must give it a VectorEnv too."""
    import gymnasium as gym

    from control.bench.noop_env import make_noop_env
    from control.env.vector_env import RacingVectorEnv

    noop = make_noop_env({"max_episode_steps": 2, "num_envs": 3})
    racing = RacingVectorEnv({"max_episode_steps": 2}, num_envs=3)
    assert isinstance(noop, gym.vector.VectorEnv) and noop.num_envs == 3
    assert noop.observation_space == racing.observation_space and noop.action_space == racing.action_space
    obs, _ = noop.reset()
    assert noop.observation_space.contains(obs)
    truncated = [noop.step(noop.action_space.sample())[3].tolist() for _ in range(3)]
    assert truncated == [[False] * 3, [True] * 3, [False] * 3]  # NEXT_STEP: the step after the limit restarts
