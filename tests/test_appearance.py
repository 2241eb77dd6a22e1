"""Domain randomisation of the camera's looks: off = frames as rendered; on = per-episode, seeded, pixels only."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import control  # noqa: F401  (registers the env ids)
from control.env.racing_env import RacingEnv
from control.env.vector_env import RacingVectorEnv
from control.errors import ConfigError
from control.sim.appearance import AppearanceRandomization, CameraAppearance, box_blur3
from control.sim.camera import PALETTE_GRAY

CAMERA = {"type": "camera", "width_px": 32, "height_px": 24}
ON = {"enabled": True}


def env_config(randomize: dict | None = None, observation: dict | None = None) -> dict:
    obs = dict(observation or CAMERA)
    if randomize is not None:
        if obs["type"] == "both":
            obs["camera"] = {**obs.get("camera", {}), "randomize": randomize}
        else:
            obs["randomize"] = randomize
    return {"observation": obs, "track": "hairpins", "max_episode_steps": 400}


def episode_frames(env: RacingEnv, seed: int | None, steps: int = 5) -> list:
    """Observations (and params, rewards) of one episode with a fixed action."""
    obs, info = env.reset(seed=seed)
    out = [(obs, None, None)]
    for _ in range(steps):
        obs, reward, _, _, info = env.step(np.array([0.1, 0.5], dtype=np.float32))
        out.append((obs, reward, info.get("params")))
    return out


def test_off_by_default_the_frames_are_bit_identical_to_no_randomize_section():
    plain = episode_frames(RacingEnv(env_config()), seed=3)
    off = episode_frames(RacingEnv(env_config({"enabled": False, "noise_std": 0.5})), seed=3)
    for (a, _, _), (b, _, _) in zip(plain, off, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)


def _looks(on: np.ndarray, off: np.ndarray) -> dict[int, int]:
    """Rendered gray value -> randomised value; an AssertionError when one rendered value maps to two."""
    pairs = set(zip(off.ravel().tolist(), on.ravel().tolist(), strict=True))
    looks = dict(pairs)
    assert len(looks) == len(pairs), "a rendered value got two looks in one frame"
    return looks


def test_on_the_looks_change_between_episodes_but_not_within_one():
    # No noise or blur: the looks are then a per-pixel function of the rendered value, visible frame by frame.
    on_env = RacingEnv(env_config({**ON, "noise_std": 0.0, "blur": 0.0}))
    off_env = RacingEnv(env_config())
    per_episode = []
    for episode in range(3):
        seed = 21 if episode == 0 else None
        on, off = episode_frames(on_env, seed, steps=6), episode_frames(off_env, seed, steps=6)
        looks = [_looks(x, y) for (x, _, _), (y, _, _) in zip(on, off, strict=True)]
        merged = {}
        for frame_looks in looks:
            for value, shown in frame_looks.items():
                assert merged.setdefault(value, shown) == shown  # within the episode, one look per rendered value
        per_episode.append(merged)
    road = int(PALETTE_GRAY[1])
    assert len({looks[road] for looks in per_episode}) == 3  # between episodes the road looks different


def test_same_seed_same_looks_and_other_seed_other_looks():
    a = episode_frames(RacingEnv(env_config(ON)), seed=5)
    b = episode_frames(RacingEnv(env_config(ON)), seed=5)
    for (x, _, _), (y, _, _) in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    plain = episode_frames(RacingEnv(env_config()), seed=5)
    assert not np.array_equal(a[0][0], plain[0][0])  # randomised frames are not the rendered ones


def test_randomisation_changes_pixels_but_not_rays_params_rewards_or_the_next_episodes():
    both = {"type": "both", "camera": {"width_px": 32, "height_px": 24}}
    on_env, off_env = RacingEnv(env_config(ON, both)), RacingEnv(env_config(None, both))
    for _ in range(2):  # two episodes: the looks come from a child generator, the car's stream is untouched
        on, off = episode_frames(on_env, seed=None if _ else 11), episode_frames(off_env, seed=None if _ else 11)
        for (x, r_on, p_on), (y, r_off, p_off) in zip(on, off, strict=True):
            assert np.array_equal(x["vlidar"], y["vlidar"])
            assert r_on == r_off
            if p_on is not None:
                assert {k: np.asarray(v).tolist() for k, v in p_on.items()} == {k: np.asarray(v).tolist() for k, v in p_off.items()}
        assert not np.array_equal(on[0][0]["camera"], off[0][0]["camera"])


def test_the_vector_env_randomises_each_car_on_its_own_and_keeps_the_space():
    env = RacingVectorEnv(env_config({**ON, "noise_std": 0.0}), num_envs=3)
    obs, _ = env.reset(seed=[1, 2, 3], options={"start_waypoint": 0})
    assert obs.shape == (3, 24, 32, 1) and obs.dtype == np.uint8
    assert env.single_observation_space.contains(obs[0])
    assert len({obs[i].tobytes() for i in range(3)}) == 3  # same place, three looks


def test_check_env_passes_with_randomisation_on():
    check_env(RacingEnv(env_config(ON)), skip_render_check=True)


def test_normalized_rgb_frames_stay_in_their_space():
    env = RacingEnv(env_config(ON, {**CAMERA, "rgb": True, "normalize": True, "frame_stack": 2}))
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (24, 32, 6) and env.observation_space.contains(obs)


def test_colours_map_every_palette_class_and_keep_foreign_pixels():
    settings = AppearanceRandomization(enabled=True, brightness=0.0, contrast=0.0, gamma=0.0, noise_std=0.0, blur=0.0).model_dump()
    looks = CameraAppearance(settings, channels=1)
    looks.redraw(np.array([0]), [np.random.default_rng(4)], num_cars=1)
    frame = np.array(list(PALETTE_GRAY) + [7], dtype=np.uint8).reshape(1, 1, 6, 1)  # the 5 classes and a foreign value
    out = looks.apply(frame, np.array([0]))
    np.testing.assert_array_equal(out[0, 0, :5, 0], np.rint(looks.palettes[0, :, 0]).astype(np.uint8))
    assert out[0, 0, 5, 0] == 7
    assert not np.array_equal(out[0, 0, :5, 0], PALETTE_GRAY)


def _per_pixel_looks(looks: CameraAppearance, frames: np.ndarray, cars: np.ndarray) -> np.ndarray:
    """The looks' colour and tone stages written out pixel by pixel (noise and blur off): what apply's tables must equal."""
    out = np.empty(frames.shape, dtype=np.uint8)
    for i, car in enumerate(cars.tolist()):
        for y, x in np.ndindex(*frames.shape[1:3]):
            pixel = frames[i, y, x].astype(np.float32)
            known = np.flatnonzero(looks.base_palette[:, 0] == pixel[0])
            value = looks.palettes[car, known[0]] if len(known) else pixel
            v = np.clip((value / 255 - 0.5) * looks.contrast[car] + 0.5 + looks.brightness[car], 0, 1) ** looks.gamma[car]
            out[i, y, x] = np.clip(np.rint(v * 255), 0, 255)
    return out


@pytest.mark.parametrize("channels", [1, 3])
def test_the_looks_tables_equal_the_per_pixel_colour_and_tone(channels):
    settings = AppearanceRandomization(enabled=True, noise_std=0.0, blur=0.0).model_dump()
    looks = CameraAppearance(settings, channels=channels)
    looks.redraw(np.arange(3), [np.random.default_rng(seed) for seed in range(3)], num_cars=3)
    rng = np.random.default_rng(9)
    palette = looks.base_palette.astype(np.uint8)
    frames = palette[rng.integers(0, len(palette), size=(2, 5, 7))]  # (2, 5, 7, C) class colours ...
    frames[:, 0, :] = rng.integers(0, 256, size=(2, 7, channels))  # ... and a row of arbitrary (mostly foreign) values
    cars = np.array([2, 0])
    out = looks.apply(frames, cars)
    np.testing.assert_allclose(out.astype(int), _per_pixel_looks(looks, frames, cars).astype(int), atol=1)


def test_box_blur_keeps_a_flat_image_and_smooths_an_edge():
    flat = np.full((1, 4, 4, 1), 0.5, dtype=np.float32)
    np.testing.assert_allclose(box_blur3(flat), flat)
    edge = np.zeros((1, 3, 4, 1), dtype=np.float32)
    edge[:, :, 2:] = 1.0
    np.testing.assert_allclose(box_blur3(edge)[0, 1, :, 0], [0, 1 / 3, 2 / 3, 1], atol=1e-6)


@pytest.mark.parametrize("randomize, message", [
    ({"enabled": True, "nois_std": 0.1}, "did you mean 'noise_std'"),
    ({"enabled": True, "contrast": 1.5}, "contrast must be a number in [0, 1)"),
    ({"enabled": "yes"}, "enabled must be true or false"),
])
def test_bad_randomize_keys_are_one_line_errors(randomize, message):
    from control.env.config import validate_env_config

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        validate_env_config(env_config(randomize))
