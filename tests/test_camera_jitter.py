"""Camera pose jitter (issue 13): per-episode lens height, pitch and field of view, seeded; pixels only."""
from __future__ import annotations

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.sim.base import CameraSpec
from control.sim.camera import GroundCamera, LensPoses
from tests.test_camera_objects import LENS, rectangle_track

NEUTRAL_LOOKS = {"enabled": True, "colors": False, "brightness": 0.0, "contrast": 0.0, "gamma": 0.0, "noise_std": 0.0, "blur": 0.0}
JITTER = {"camera_height_m": 0.03, "camera_pitch_deg": 5.0, "camera_fov_deg": 20.0}


def make_env(tmp_path, randomize: dict | None, observation: str = "camera", race: dict | None = None) -> RacingEnv:
    path = rectangle_track().to_npy(tmp_path / "rectangle.npy")
    camera = {"randomize": randomize} if randomize is not None else {}
    obs = {"type": "camera", **camera} if observation == "camera" else {"type": "both", "camera": camera}
    config = {"track": str(path), "start": {"mode": "random"}, "observation": obs, "max_episode_steps": 400}
    if race is not None:
        config["race"] = race
    return RacingEnv(config)


def episode(env: RacingEnv, seed: int | None, steps: int = 6) -> list[tuple]:
    """(observation, reward, params) of one episode with fixed actions."""
    obs, info = env.reset(seed=seed)
    out = [(obs, None, info["params"])]
    for _ in range(steps):
        obs, reward, _, _, info = env.step(np.array([0.2, 0.3], dtype=np.float32))
        out.append((obs, reward, info["params"]))
    return out


def test_jitter_off_leaves_the_frames_bit_identical(tmp_path):
    plain = episode(make_env(tmp_path, None), seed=5)
    disabled = episode(make_env(tmp_path, {"enabled": False, **JITTER}), seed=5)  # ranges set but randomisation off
    for (a, _, _), (b, _, _) in zip(plain, disabled, strict=True):
        np.testing.assert_array_equal(a, b)
    # With the looks on, zero ranges (the default) draw the same looks as before the jitter existed.
    looks = {"enabled": True}
    before = episode(make_env(tmp_path, looks), seed=5)
    zero = episode(make_env(tmp_path, {**looks, "camera_height_m": 0.0, "camera_pitch_deg": 0.0, "camera_fov_deg": 0.0}), seed=5)
    for (a, _, _), (b, _, _) in zip(before, zero, strict=True):
        np.testing.assert_array_equal(a, b)


def test_jittered_frames_are_the_views_through_the_drawn_lens(tmp_path):
    env = make_env(tmp_path, {**NEUTRAL_LOOKS, **JITTER})
    obs, _ = env.reset(seed=11)
    look = env.race.observation_type.appearance
    height_m, pitch_deg, fov_deg = look.height_offset_m[0], look.pitch_offset_deg[0], look.fov_offset_deg[0]
    assert abs(height_m) <= 0.03 and abs(pitch_deg) <= 5.0 and abs(fov_deg) <= 20.0
    assert min(abs(height_m), abs(pitch_deg), abs(fov_deg)) > 0
    st = env.race.states
    jittered = GroundCamera(rectangle_track(), **{**LENS, "height_m": LENS["height_m"] + height_m, "pitch_deg": LENS["pitch_deg"] + pitch_deg,
                                                 "fov_deg": LENS["fov_deg"] + fov_deg})
    expected = jittered.render(float(st.x_m[0]), float(st.y_m[0]), float(st.yaw_rad[0]))
    plain = GroundCamera(rectangle_track(), **LENS).render(float(st.x_m[0]), float(st.y_m[0]), float(st.yaw_rad[0]))
    # The per-pixel rays are computed in the kernel, not looked up: a texel boundary may round the other way.
    assert np.mean(obs[..., 0] != expected) < 0.005
    assert np.mean(obs[..., 0] != plain) > 10 * np.mean(obs[..., 0] != expected)  # and far from the unjittered view


def test_the_lens_kernel_with_the_cameras_own_lens_is_the_plain_render():
    cam = GroundCamera(rectangle_track(), **LENS)
    rng = np.random.default_rng(0)
    x, y, yaw = rng.uniform(0, 20, 16), rng.uniform(-0.3, 0.3, 16), rng.uniform(-0.5, 0.5, 16)
    posed = cam.render_batch(x, y, yaw, lens=LensPoses.of_spec(CameraSpec(), 16))
    assert np.mean(posed == cam.render_batch(x, y, yaw)) > 0.999


def test_same_seed_same_jitter_new_episodes_new_jitter_and_rays_params_rewards_unchanged(tmp_path):
    randomize = {"enabled": True, **JITTER}
    a, b = make_env(tmp_path, randomize, "both"), make_env(tmp_path, randomize, "both")
    plain = make_env(tmp_path, None, "both")
    first_a, first_b, first_plain = episode(a, seed=3), episode(b, seed=3), episode(plain, seed=3)
    for (oa, ra, pa), (ob, _, _), (op, rp, pp) in zip(first_a, first_b, first_plain, strict=True):
        np.testing.assert_array_equal(oa["camera"], ob["camera"])  # same seed: same lens and looks
        np.testing.assert_array_equal(oa["vlidar"], op["vlidar"])  # rays as without the jitter
        assert ra == rp and pa == pp  # rewards and params too
    assert not np.array_equal(first_a[-1][0]["camera"], first_plain[-1][0]["camera"])
    lens_of = lambda env: env.race.observation_type.camera.appearance.height_offset_m[0]  # noqa: E731
    drawn = [lens_of(a)]
    for _ in range(3):
        episode(a, seed=None, steps=1)
        drawn.append(lens_of(a))
    assert len(set(drawn)) == len(drawn)  # a new lens every episode
    assert all(abs(h) <= 0.03 for h in drawn)


def test_jitter_and_objects_render_together(tmp_path):
    env = make_env(tmp_path, {**NEUTRAL_LOOKS, **JITTER}, race={"type": "object_avoidance", "num_obstacles": 6})
    for obs, _, _ in episode(env, seed=2, steps=3):
        assert obs.shape == (120, 160, 1) and obs.dtype == np.uint8


@pytest.mark.parametrize("key", ["camera_height_m", "camera_pitch_deg", "camera_fov_deg"])
def test_a_negative_range_is_a_one_line_error(tmp_path, key):
    from control.errors import ConfigError

    with pytest.raises(ConfigError, match=key) as err:
        make_env(tmp_path, {"enabled": True, key: -1.0})
    assert "\n" not in str(err.value)


def test_a_car_of_the_vector_env_sees_what_the_single_env_sees(tmp_path):
    from control.env.vector_env import RacingVectorEnv

    single = make_env(tmp_path, {**NEUTRAL_LOOKS, **JITTER}, race={"type": "object_avoidance", "num_obstacles": 6})
    config = {**single.config, "observation": {"type": "stereo_camera", "randomize": {**NEUTRAL_LOOKS, **JITTER}}}
    single = RacingEnv(config)
    batch = RacingVectorEnv(config, num_envs=3)
    obs_one, _ = single.reset(seed=7)
    obs_all, _ = batch.reset(seed=[7, 8, 9])
    assert obs_all.shape == (3, 120, 160, 2)
    np.testing.assert_array_equal(obs_all[0], obs_one)
    actions = np.tile(np.array([[0.1, 0.2]], dtype=np.float32), (3, 1))
    for _ in range(5):
        obs_one, *_ = single.step(actions[0])
        obs_all, *_ = batch.step(actions)
        np.testing.assert_array_equal(obs_all[0], obs_one)
    assert len({obs_all[i].tobytes() for i in range(3)}) == 3
