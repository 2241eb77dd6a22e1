"""DeepRacer's lidar observation types (deepracer_lidar: raw, sectors, discretized) and the Evo car's camera + lidar."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from control.env.racing_env import RacingEnv
from control.env.vector_env import RacingVectorEnv
from control.errors import ConfigError
from control.track.track import Track
from tests.test_race_objects import _rectangle_track

# DeepRacer's simulated lidar and filters (deepracer-simapp bundle/markov/sensors/constants.py, environments/constants.py).
DEEPRACER_ANGLES_RAD = np.linspace(-2.61799, 2.61799, 64)
DEEPRACER_RANGE_M = (0.15, 12.0)

VARIANTS = {
    "raw": {"type": "deepracer_lidar"},
    "sectors": {"type": "deepracer_lidar", "mode": "sectors"},
    "discretized": {"type": "deepracer_lidar", "mode": "discretized", "num_values_per_sector": 4, "sector_clipping_dist_m": 2.0},
    "raw_ego": {"type": "deepracer_lidar", "ego_features": True},
    "evo": {"type": "deepracer_evo", "camera": {"width_px": 32, "height_px": 24}},
    "evo_stereo": {"type": "deepracer_evo", "camera": {"width_px": 32, "height_px": 24}, "stereo_baseline_m": 0.06},
}


def _lidar(obs):
    return obs["lidar"] if isinstance(obs, dict) else obs


@pytest.mark.parametrize("name", list(VARIANTS))
def test_spaces_and_check_env(name):
    env = RacingEnv({"observation": VARIANTS[name]})
    check_env(env)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    expected = {"raw": (64,), "sectors": (8,), "discretized": (32,), "raw_ego": (66,), "evo": (64,), "evo_stereo": (64,)}[name]
    evo = name.startswith("evo")
    space = env.observation_space["lidar"] if evo else env.observation_space
    assert space.shape == expected
    if name == "raw" or evo:  # DeepRacer's LIDAR space: Box(0.15, 1.0, 64)
        assert np.all(space.low == np.float32(0.15)) and np.all(space.high == 1.0)
    if evo:  # one gray camera, or DeepRacer's stereo pair (left, right) on the channel axis
        assert env.observation_space["camera"].shape == (24, 32, 2 if name == "evo_stereo" else 1)


def test_evo_parts_are_the_single_sensor_types():
    """The Evo Dict holds exactly what the stereo_camera and deepracer_lidar types observe on their own."""
    camera = {"width_px": 32, "height_px": 24}
    evo = _drive(RacingEnv({"track": "hairpins", "observation": VARIANTS["evo_stereo"]}), 5)
    stereo = _drive(RacingEnv({"track": "hairpins", "observation": {"type": "stereo_camera", **camera, "baseline_m": 0.06}}), 5)
    lidar = _drive(RacingEnv({"track": "hairpins", "observation": VARIANTS["raw"]}), 5)
    for (e, *_), (s, *_), (ld, *_) in zip(evo, stereo, lidar, strict=True):
        np.testing.assert_array_equal(e["camera"], s)
        np.testing.assert_array_equal(e["lidar"], ld)


def _drive(env: RacingEnv, steps: int, seed: int = 3):
    """(obs, car x, y, yaw) after reset and each of `steps` random actions (restarting an ended episode)."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    v = env.vehicle
    out = [(obs, v.x_m, v.y_m, v.yaw_rad)]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
        v = env.vehicle
        out.append((obs, v.x_m, v.y_m, v.yaw_rad))
    return out


def _border_distances_m(track: Track, x: float, y: float, yaw: float) -> np.ndarray:
    """Ray distances at DeepRacer's 64 angles, out to the sensor's 12 m, from the track's own ray query."""
    return track.ray_distances(np.array([x, y]), yaw + DEEPRACER_ANGLES_RAD, DEEPRACER_RANGE_M[1])


def test_raw_readings_are_the_track_ray_distances_at_deepracer_angles_clipped_to_0_15_1_m():
    env = RacingEnv({"track": "hairpins", "observation": VARIANTS["raw"]})
    np.testing.assert_allclose(env.observation_type.angles_rad, DEEPRACER_ANGLES_RAD, atol=1e-5)  # -150° .. +150°, right first
    near = 0
    for obs, x, y, yaw in _drive(env, 40):
        expected = np.clip(_border_distances_m(env.driving_track, x, y, yaw), 0.15, 1.0)  # ObservationClippingFilter(0.15, 1.0)
        np.testing.assert_allclose(obs, expected, atol=1e-6)
        near += int((obs < 1.0).sum())
    assert near > 0  # the borders were within the clipping distance, not only clipped rays


def test_sectors_are_deepracer_binary_sectors_of_those_distances():
    env = RacingEnv({"track": "hairpins", "observation": VARIANTS["sectors"], "start": {"lateral_noise_m": 0.3}})
    seen = set()
    for obs, x, y, yaw in _drive(env, 60):
        distances = _border_distances_m(env.driving_track, x, y, yaw)
        # ObservationBinarySectorFilter: min over each of 8 groups of 8 consecutive samples, < 0.5 m -> 1.0.
        expected = (np.min(distances.reshape(-1, 8), axis=1) < 0.5).astype(np.float32)
        np.testing.assert_array_equal(obs, expected)
        seen.update(obs.tolist())
    assert seen == {0.0, 1.0}


def test_discretized_sectors_are_deepracer_one_hot_bins():
    env = RacingEnv({"track": "hairpins", "observation": VARIANTS["discretized"]})
    for obs, x, y, yaw in _drive(env, 30):
        distances = _border_distances_m(env.driving_track, x, y, yaw)
        # ObservationSectorDiscretizeFilter(8, 4, 2.0): sector minimum, clipped, binned by 0.5 m, one-hot minus the last bin.
        nearest = np.minimum(np.min(distances.reshape(-1, 8), axis=1), 2.0)
        one_hot = np.zeros((8, 5))
        one_hot[np.arange(8), np.floor(nearest / 0.5).astype(int)] = 1
        np.testing.assert_array_equal(obs, np.delete(one_hot, -1, axis=1).reshape(-1))


def test_noise_is_gaussian_on_the_hits_seeded_and_leaves_clear_rays_at_the_cap():
    noisy = {"type": "deepracer_lidar", "noise_stddev_m": 0.01}  # DeepRacer's Gazebo lidar noise
    env = RacingEnv({"track": "hairpins", "observation": noisy})
    run = _drive(env, 30)
    again = _drive(RacingEnv({"track": "hairpins", "observation": noisy}), 30)
    other_seed = _drive(RacingEnv({"track": "hairpins", "observation": noisy}), 0, seed=4)
    errors = []
    for (obs, x, y, yaw), (repeat, *_) in zip(run, again, strict=True):
        np.testing.assert_array_equal(obs, repeat)  # same seed, same noise
        exact = np.clip(_border_distances_m(env.driving_track, x, y, yaw), 0.15, 1.0)
        clear = exact >= 1.0
        assert np.all(obs[clear] == 1.0)  # nothing within reach: no noise
        inside = (exact > 0.2) & (exact < 0.9)  # away from the clipping bounds
        errors.append(obs[inside] - exact[inside])
    errors = np.concatenate(errors)
    assert len(errors) > 500
    assert abs(errors.mean()) < 0.002 and 0.008 < errors.std() < 0.012
    assert not np.array_equal(other_seed[0][0], _drive(RacingEnv({"track": "hairpins", "observation": noisy}), 0, seed=5)[0][0])




@pytest.mark.parametrize("mode", ["raw", "sectors"])
def test_a_box_in_front_lowers_the_front_readings_and_sets_the_front_sectors(tmp_path, mode):
    path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    # The car at (5.5, 0) heading +x; a box at 10 % of the lap in the inner lane spans y -0.15..0.65, near face x = 5.85.
    config = {"track": str(path), "start": {"mode": "fixed", "waypoint": 11}, "observation": {"type": "deepracer_lidar", "mode": mode}}
    boxed, _ = RacingEnv({**config, "race": {"type": "object_avoidance", "positions": [[0.1, 1]], "box_width_m": 0.8}}).reset(seed=0)
    plain, _ = RacingEnv(config).reset(seed=0)
    if mode == "raw":
        front = [31, 32]  # the two samples nearest the heading, -2.38° and +2.38°
        np.testing.assert_allclose(boxed[front], 0.35 / np.cos(DEEPRACER_ANGLES_RAD[front]), atol=1e-6)
        assert np.all(plain[front] == 1.0)  # nothing within 1 m ahead without the box
        others = np.abs(DEEPRACER_ANGLES_RAD) > math.radians(70)  # the sides still read the borders
        np.testing.assert_allclose(boxed[others], plain[others], atol=1e-6)
    else:
        assert boxed[3] == boxed[4] == 1.0 and plain[3] == plain[4] == 0.0  # the front sectors see the box 0.35 m ahead
        np.testing.assert_array_equal(boxed[[0, 1, 6, 7]], plain[[0, 1, 6, 7]])


VECTOR_CONFIGS = {
    "raw": {"track": "speedway", "observation": VARIANTS["raw"], "max_episode_steps": 40},
    "raw_noisy": {"track": "hairpins", "observation": {"type": "deepracer_lidar", "noise_stddev_m": 0.01}, "max_episode_steps": 25},
    "sectors_with_boxes": {"track": "speedway", "observation": VARIANTS["sectors"], "max_episode_steps": 40,
                           "race": {"type": "object_avoidance", "num_obstacles": 6}},
    "evo": {"track": "hairpins", "observation": VARIANTS["evo"], "max_episode_steps": 30},
}


@pytest.mark.parametrize("name", list(VECTOR_CONFIGS))
def test_vector_env_of_n_cars_equals_n_single_envs(name):
    config, n, seed = VECTOR_CONFIGS[name], 3, 5
    venv = RacingVectorEnv(config, num_envs=n)
    singles = [RacingEnv(config) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(singles)]
    venv.action_space.seed(seed)
    pending_reset = [False] * n
    for step in range(60):
        for i in range(n):
            if isinstance(vobs, dict):
                for key in vobs:
                    np.testing.assert_allclose(vobs[key][i], obs[i][key], atol=1e-6, err_msg=f"{key} car {i} step {step}")
            else:
                np.testing.assert_allclose(vobs[i], obs[i], atol=1e-6, err_msg=f"car {i} step {step}")
        actions = venv.action_space.sample()
        vobs, _, vterm, vtrunc, _ = venv.step(actions)
        for i, env in enumerate(singles):
            if pending_reset[i]:  # NEXT_STEP autoreset: this step reset the car
                obs[i], _ = env.reset()
                pending_reset[i] = False
            else:
                obs[i], _, terminated, truncated, _ = env.step(actions[i])
                pending_reset[i] = terminated or truncated
            assert pending_reset[i] == bool(vterm[i] or vtrunc[i])


@pytest.mark.parametrize(("observation", "words"), [
    ({"type": "deepracer_lidar", "num_sector": 4}, "did you mean 'num_sectors'"),
    ({"type": "deepracer_lidar", "mode": "sector"}, "did you mean 'sectors'"),
    ({"type": "deepracer_lidar", "mode": "sectors", "num_samples": 60, "num_sectors": 8}, "num_samples 60 must divide"),
    ({"type": "deepracer_lidar", "clipping_dist_m": 20.0}, "clipping_dist_m 20.0 must be"),
    ({"type": "deepracer_lidar", "mode": "sectors", "max_range_m": 0.4}, "sector_clipping_dist_m 0.5 must be"),
    ({"type": "deepracer_evo", "lidar": {"fov": 180.0}}, "did you mean 'fov_deg'"),
])
def test_bad_settings_are_one_line_errors(observation, words):
    with pytest.raises(ConfigError, match=words) as err:
        RacingEnv({"observation": observation})
    assert "\n" not in str(err.value) and "env_config.observation" in str(err.value)
