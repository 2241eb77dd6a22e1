"""RacingEnv: registration, spaces, determinism, termination, params, actions, rewards."""
import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import control  # noqa: F401  (registers the env ids)
from control.env.actions import DEEPRACER_DEFAULT_ACTIONS, make_action_type
from control.env.config import validate_env_config
from control.env.racing_env import RacingEnv
from control.env.registration import ENV_IDS
from control.errors import ConfigError, RewardFunctionError

OBSERVATIONS = [
    {"type": "vlidar"},
    {"type": "vlidar", "angles_deg": [-45, 0, 45], "ego_features": False},
    {"type": "camera", "width_px": 40, "height_px": 30},
    {"type": "camera", "width_px": 32, "height_px": 24, "rgb": True, "frame_stack": 3},
    {"type": "both", "camera": {"width_px": 32, "height_px": 24}, "vlidar": {"num_rays": 8}},
]


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_check_env_on_registered_ids(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.reset(seed=0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


@pytest.mark.parametrize("observation", OBSERVATIONS, ids=lambda o: o["type"])
@pytest.mark.parametrize("action", [{"type": "continuous"}, {"type": "discrete"}], ids=["continuous", "discrete"])
def test_check_env_over_observation_and_action_types(observation, action):
    env = RacingEnv({"observation": observation, "action": action})
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)


def run_episode(env: RacingEnv, seed: int, steps: int = 200) -> tuple[list, list]:
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    observations, rewards = [obs], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        observations.append(obs)
        rewards.append(reward)
        if terminated or truncated:
            break
    return observations, rewards


def test_same_seed_same_episode():
    a = run_episode(RacingEnv({"track": "hairpins"}), seed=7)
    b = run_episode(RacingEnv({"track": "hairpins"}), seed=7)
    c = run_episode(RacingEnv({"track": "hairpins"}), seed=8)
    assert len(a[0]) == len(b[0]) and all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=False))
    assert a[1] == b[1]
    assert not np.array_equal(a[0][0], c[0][0])


def centerline_driver(env: RacingEnv, speed_mps: float = 1.5) -> float:
    """Pure-pursuit-ish steering (degrees) towards a point 0.6 m ahead on the centerline."""
    v = env.vehicle
    s = env.driving_track.project(np.array([[v.x_m, v.y_m]])).s_m[0]
    (target,), _ = env.driving_track.point_at(s + 0.6)
    bearing = math.atan2(target[1] - v.y_m, target[0] - v.x_m) - v.yaw_rad
    return math.degrees(math.remainder(bearing, math.tau))


def continuous_action(steering_deg: float, speed_mps: float, low=(-30, 0.5), high=(30, 4.0)) -> np.ndarray:
    return np.array(
        [2 * (steering_deg - low[0]) / (high[0] - low[0]) - 1, 2 * (speed_mps - low[1]) / (high[1] - low[1]) - 1],
        dtype=np.float32,
    )


@pytest.mark.parametrize("direction", ["counter_clockwise", "clockwise"])
def test_a_lap_completes_at_progress_100(direction):
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed", "direction": direction}, "max_episode_steps": 2000})
    env.reset(seed=0)
    progress, info = [], {}
    for _ in range(2000):
        steer = float(np.clip(centerline_driver(env), -30, 30))
        _, _, terminated, truncated, info = env.step(continuous_action(steer, 1.5))
        progress.append(info["params"]["progress"])
        if terminated or truncated:
            break
    assert info["episode_status"] == "lap_complete" and terminated
    assert info["params"]["progress"] == 100.0
    assert np.all(np.diff(progress) >= -1e-9) and 0 <= min(progress) and max(progress) <= 100
    # 28 m at ≤ 1.5 m/s (plus the start from rest) at 15 Hz.
    assert info["lap_time_s"] == pytest.approx(info["sim_time_s"])
    assert env.track.length_m / 1.5 <= info["lap_time_s"] <= env.track.length_m / 1.5 + 3
    assert info["params"]["is_reversed"] == (direction == "clockwise")


def test_driving_off_the_track_terminates_with_is_offtrack():
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}})
    env.reset(seed=0)
    for _ in range(200):
        _, _, terminated, truncated, info = env.step(continuous_action(30.0, 1.0))  # full left lock
        if terminated or truncated:
            break
    assert terminated and info["episode_status"] == "off_track"
    assert info["params"]["is_offtrack"] and not info["params"]["all_wheels_on_track"]


def test_params_units_and_keys():
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}})
    env.reset(seed=0)
    for _ in range(20):
        _, _, _, _, info = env.step(continuous_action(-10.0, 2.0))
    p = info["params"]
    expected = {
        "all_wheels_on_track", "x", "y", "heading", "distance_from_center", "is_left_of_center", "progress", "steps",
        "speed", "steering_angle", "track_width", "track_length", "closest_waypoints", "is_reversed", "is_crashed",
        "is_offtrack", "closest_objects", "objects_location", "objects_left_of_center", "objects_speed",
        "objects_heading", "objects_distance", "objects_distance_from_center", "projection_distance",
    }
    assert expected == set(p)  # all but waypoints, which only the reward function receives
    assert p["steering_angle"] == pytest.approx(-10.0)  # degrees, negative = right
    assert p["speed"] == pytest.approx(2.0)  # m/s, the action's speed as in DeepRacer
    assert info["vehicle"]["speed_mps"] <= 2.0 + 1e-9
    assert p["steps"] == 20 and 0 < p["progress"] < 100
    assert -180 <= p["heading"] <= 180
    assert p["track_width"] == pytest.approx(0.76, abs=0.01) and p["track_length"] == pytest.approx(env.track.length_m)
    behind, ahead = p["closest_waypoints"]
    assert ahead == (behind + 1) % env.track.num_waypoints


def test_continuous_action_mapping():
    action = make_action_type({"type": "continuous", "steering_deg": [-20, 20], "speed_mps": [1, 3]})
    assert action.to_command([-1, -1])[:2] == (-20.0, 1.0)
    assert action.to_command([1, 1])[:2] == (20.0, 3.0)
    assert action.to_command([0, 0])[:2] == (0.0, 2.0)
    assert action.to_command([5, -5])[:2] == (20.0, 1.0)  # clipped


def test_discrete_action_mapping():
    default = make_action_type({"type": "discrete"})
    assert default.space().n == 10 and default.to_command(0) == (-30.0, 0.5, 0)
    custom = make_action_type({"type": "discrete", "actions": [{"steering_angle": 15, "speed": 2.5}, {"steering_angle": -5, "speed": 1}]})
    assert custom.to_command(np.int64(1)) == (-5.0, 1.0, 1)
    assert len(DEEPRACER_DEFAULT_ACTIONS) == 10
    with pytest.raises(ConfigError, match=r"actions\[0\]"):
        make_action_type({"type": "discrete", "actions": [{"steering": 15, "speed": 2.5}]})


def test_user_reward_file_is_used(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text("def reward_function(params):\n    return 2.0 if params['all_wheels_on_track'] else 0.0\n")
    env = RacingEnv({"reward": str(path), "start": {"mode": "fixed"}})
    env.reset(seed=0)
    _, reward, _, _, info = env.step(continuous_action(0, 1))
    assert reward == 2.0 and info["reward_components"] == {"reward_function": 2.0}


def test_raising_reward_function_gives_clear_error(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text("def reward_function(params):\n    return params['no_such_key']\n")
    env = RacingEnv({"reward": str(path)})
    env.reset(seed=0)
    with pytest.raises(RewardFunctionError, match=r"KeyError: 'no_such_key' at step 1") as err:
        env.step(env.action_space.sample())
    assert "\n" not in str(err.value)


def test_non_finite_reward_is_an_error(tmp_path):
    path = tmp_path / "reward.py"
    path.write_text("def reward_function(params):\n    return float('nan')\n")
    env = RacingEnv({"reward": str(path)})
    env.reset(seed=0)
    with pytest.raises(RewardFunctionError, match="non-finite nan at step 1"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize(
    "config, message",
    [
        ({"trak": "oval"}, "unknown key 'trak' in env_config (did you mean 'track'?)"),
        ({"observation": {"type": "lidar"}}, "did you mean 'vlidar'"),
        ({"observation": {"type": "vlidar", "num_ray": 8}}, "did you mean 'num_rays'"),
        ({"action": {"type": "discret"}}, "did you mean 'discrete'"),
        ({"reward": "follow_centre_line"}, "did you mean 'follow_center_line'"),
        ({"start": {"mode": "randm"}}, "did you mean 'random'"),
        ({"max_episode_steps": 0}, "positive integer"),
        ({"builtin": {"friction": 1.0}}, "did you mean 'friction_mu'"),
        ({"track": ["oval", "procedural"]}, "give track: procedural alone"),
        ({"procedural": {"length_m": [100, 200]}}, "15 <= low <= high <= 80 m"),
        ({"procedural": {"pool_size": -1}}, "whole number >= 0"),
    ],
)
def test_bad_env_config_names_the_key(config, message):
    with pytest.raises(ConfigError) as err:
        validate_env_config(config)
    assert message in str(err.value)


def test_track_keyword_accepts_names_and_files(tmp_path):
    env = gym.make("RacerVLidar-v0", track="hairpins")
    env.reset(seed=0)
    assert env.unwrapped.track.name == "hairpins"
    path = env.unwrapped.track.to_npy(tmp_path / "mine.npy")
    env = gym.make("RacerVLidar-v0", track=str(path))
    env.reset(seed=0)
    assert env.unwrapped.track.name == "mine"


def test_procedural_tracks_change_between_episodes():
    env = RacingEnv({"track": "procedural"})
    lengths = set()
    for seed in range(3):
        env.reset(seed=seed)
        lengths.add(round(env.track.length_m, 3))
    assert len(lengths) == 3


def test_start_modes():
    fixed = RacingEnv({"start": {"mode": "fixed", "waypoint": 5}})
    fixed.reset(seed=0)
    assert fixed.params["closest_waypoints"][0] in (4, 5)
    rr = RacingEnv({"start": {"mode": "round_robin", "round_robin_waypoints": 20}})
    starts = []
    for _ in range(3):
        rr.reset(seed=0)
        starts.append(rr.params["closest_waypoints"][0])
    assert starts[1] - starts[0] in (19, 20, 21) and starts[2] - starts[1] in (19, 20, 21)


def test_camera_observation_sees_the_road_ahead():
    env = RacingEnv({"observation": {"type": "camera"}, "track": "oval", "start": {"mode": "fixed"}})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (120, 160, 1) and obs.dtype == np.uint8
    road = obs[-10:, 70:90, 0]  # just ahead of the car, centre columns
    corner = obs[-10:, :5, 0]
    assert np.median(road) != np.median(corner) or np.median(obs[:10, :, 0]) != np.median(road)


def test_rllib_creator_receives_worker_index():
    from ray.rllib.env.env_context import EnvContext

    from control.env.registration import make_env_creator

    env = make_env_creator("RacerVLidar-v0")(EnvContext({"seed": 3}, worker_index=2, vector_index=1))
    assert env.worker_index == 2 and env.vector_index == 1
    assert env.config["observation"]["type"] == "vlidar"


def test_simulator_fault_truncates_with_a_valid_observation_even_without_a_camera_frame():
    from control.sim.base import SimulatorError

    env = RacingEnv({"observation": {"type": "both", "camera": {"width_px": 32, "height_px": 24}}})
    env.reset(seed=0)

    def fail(*_args):
        raise SimulatorError("server gone")

    env.sim.step = fail
    env.sim.camera_image = fail  # the frame went with the server
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert (terminated, truncated, reward) == (False, True, 0.0)
    assert info["episode_status"] == "sim_error" and "server gone" in info["truncated_reason"]
    assert env.observation_space.contains(obs)


def test_training_speed_metric_is_the_measured_speed_not_the_command():
    from control.integration.callbacks.metrics import summarize_episode

    env = RacingEnv({"start": {"mode": "fixed"}})
    env.reset(seed=0)
    infos = [env.step(np.array([0.0, 1.0], dtype=np.float32))[4] for _ in range(3)]  # 4 m/s asked from rest
    measured = np.mean([i["vehicle"]["speed_mps"] for i in infos])
    assert summarize_episode(infos)["speed_mps_mean"] == pytest.approx(measured)
    assert measured < 1.0 < infos[0]["speed_cmd_mps"]
    # The reward sees the measured speed too: commanding 4 m/s from rest earns only what the car does.
    assert [i["params"]["speed"] for i in infos] == [i["vehicle"]["speed_mps"] for i in infos]


def test_start_lateral_offset_is_across_the_track_whatever_the_heading_noise():
    def start_offset_m(heading_noise_deg: float) -> float:
        env = RacingEnv({"start": {"mode": "fixed", "waypoint": 3, "lateral_noise_m": 0.3,
                                   "heading_noise_deg": heading_noise_deg}})
        env.reset(seed=3)  # same seed: the same lateral draw
        return env.params["distance_from_center"]

    assert start_offset_m(60.0) == pytest.approx(start_offset_m(0.0), abs=1e-9)
    assert start_offset_m(0.0) > 0.01
