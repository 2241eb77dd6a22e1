"""Random-shift augmentation (RAD and DrAC): the array op, the learner connector piece, the config section, tiny PPO runs."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from control.errors import ConfigError
from control.training.augmentation import random_shift
from control.training.config_loader import build_ppo_config, load_ppo_config, resolve_config

REPO = Path(__file__).resolve().parents[1]
CAMERA = REPO / "resources" / "configs" / "ppo_camera_config.yaml"
BASE = {"env": "RacerCamera-v0", "env_config": {"observation": {"type": "camera", "width_px": 16, "height_px": 12}}}


def _frames(dtype=np.uint8, shape=(6, 12, 16, 2)) -> np.ndarray:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=shape)
    return frames.astype(dtype) if dtype == np.uint8 else (frames / 255).astype(dtype)


def _is_edge_padded_crop(out: np.ndarray, image: np.ndarray, pad_px: int) -> bool:
    """out equals some (H, W) window of `image` padded by pad_px with its edge pixels."""
    h, w = image.shape[:2]
    padded = np.pad(image, ((pad_px, pad_px), (pad_px, pad_px), (0, 0)), mode="edge")
    return any(np.array_equal(out, padded[dy:dy + h, dx:dx + w])
               for dy in range(2 * pad_px + 1) for dx in range(2 * pad_px + 1))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_random_shift_keeps_shape_and_dtype_and_crops_each_frame_from_its_padded_self(dtype):
    frames = _frames(dtype)
    out = random_shift(frames, 3, np.random.default_rng(1))
    assert out.shape == frames.shape and out.dtype == frames.dtype
    assert all(_is_edge_padded_crop(out[i], frames[i], 3) for i in range(len(frames)))
    assert not np.array_equal(out, frames)  # 6 frames, 49 offsets each: some frame moved


def test_random_shift_is_per_frame_and_seeded():
    frames = np.repeat(_frames(shape=(1, 12, 16, 1)), 32, axis=0)  # the same frame 32 times
    a = random_shift(frames, 4, np.random.default_rng(7))
    b = random_shift(frames, 4, np.random.default_rng(7))
    c = random_shift(frames, 4, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len({a[i].tobytes() for i in range(32)}) > 1  # each frame has its own offset


def test_a_vertical_shift_moves_rows_only():
    frames = _frames(shape=(64, 12, 16, 2))
    out = random_shift(frames, 3, np.random.default_rng(5), axes="vertical")
    assert out.shape == frames.shape and out.dtype == frames.dtype
    padded = np.pad(frames, ((0, 0), (3, 3), (0, 0), (0, 0)), mode="edge")
    offsets = [next(dy for dy in range(7) if np.array_equal(out[i], padded[i, dy:dy + 12])) for i in range(64)]
    assert len(set(offsets)) > 1  # every frame is a whole-width window of its rows, at its own offset


def test_random_shift_keeps_leading_time_axis():
    frames = _frames(shape=(2, 3, 12, 16, 1))
    assert random_shift(frames, 2, np.random.default_rng(0)).shape == frames.shape


def test_the_learner_piece_shifts_image_observations_and_dict_camera_parts_only():
    from ray.rllib.core.columns import Columns

    from control.training.augmentation_connector import RandomShift

    camera, vlidar = _frames(np.float32), np.random.default_rng(2).random((6, 34)).astype(np.float32)
    batch = {"default_policy": {Columns.OBS: {"camera": camera.copy(), "vlidar": vlidar.copy()}}}
    RandomShift(pad_px=4, seed=0)(rl_module=None, batch=batch, episodes=[])
    obs = batch["default_policy"][Columns.OBS]
    np.testing.assert_array_equal(obs["vlidar"], vlidar)
    assert obs["camera"].shape == camera.shape and not np.array_equal(obs["camera"], camera)
    plain = {"default_policy": {Columns.OBS: camera.copy()}}
    RandomShift(pad_px=4, seed=0)(rl_module=None, batch=plain, episodes=[])
    np.testing.assert_array_equal(plain["default_policy"][Columns.OBS], obs["camera"])  # same seed, same shifts


def test_method_drac_keeps_the_raw_frames_and_adds_shifted_ones_beside_them():
    from ray.rllib.core.columns import Columns

    from control.training.augmentation_connector import AUGMENTED_OBS, make_augmentation_piece

    camera = _frames(np.float32)
    batch = {"default_policy": {Columns.OBS: camera.copy()}}
    piece = make_augmentation_piece({"type": "random_shift", "pad_px": 4, "seed": 0})  # drac is the default method
    piece(rl_module=None, batch=batch, episodes=[])
    np.testing.assert_array_equal(batch["default_policy"][Columns.OBS], camera)
    shifted = batch["default_policy"][AUGMENTED_OBS]
    assert shifted.shape == camera.shape and not np.array_equal(shifted, camera)
    assert all(_is_edge_padded_crop(shifted[i], camera[i], 4) for i in range(len(camera)))
    assert make_augmentation_piece({"type": "none"}) is None


def test_augmentation_section_sets_the_augmented_learner_and_is_off_by_default():
    from control.training.augmentation_connector import AugmentedPPOTorchLearner

    plain = build_ppo_config(resolve_config(dict(BASE)))
    assert plain.learner_class is not AugmentedPPOTorchLearner
    resolved = resolve_config({**BASE, "seed": 3, "augmentation": {"type": "random_shift", "pad_px": 2}})
    config = build_ppo_config(resolved)
    assert config.learner_class is AugmentedPPOTorchLearner
    assert config.learner_config_dict["augmentation"] == {"type": "random_shift", "pad_px": 2, "axes": "both", "method": "drac",
                                                          "drac_coeff": 0.1, "drac_fraction": 0.25, "seed": 3}
    again = resolve_config(resolved.to_dict())  # the run's written config.yaml reads back the same
    assert again.augmentation == resolved.augmentation


@pytest.mark.parametrize("section, message", [
    ({"type": "random_shift", "pad": 4}, "unknown key 'pad' in config: augmentation (did you mean 'pad_px'?)"),
    ({"type": "randm_shift"}, "did you mean 'random_shift'"),
    ({"type": "random_shift", "pad_px": 0}, "pad_px must be a positive integer"),
    ({"type": "random_shift", "method": "drag"}, "did you mean 'drac'"),
    ({"type": "random_shift", "axes": "horizontal"}, "axes"),
    ({"type": "random_shift", "drac_coeff": -1.0}, "drac_coeff"),
    ({"type": "random_shift", "drac_fraction": 0.0}, "drac_fraction must be a number in (0, 1]"),
])
def test_bad_augmentation_section_is_a_one_line_error(section, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config({**BASE, "augmentation": section})


def test_a_misspelt_augmentation_key_is_suggested():
    with pytest.raises(ConfigError, match="did you mean 'augmentation'"):
        resolve_config({**BASE, "augmentaton": {"type": "random_shift"}})


def _tiny_camera_algo(method: str):
    """A PPO algorithm on tiny camera frames with a 3-pixel random shift by `method`: one iteration takes seconds."""
    config, _ = load_ppo_config(CAMERA, [
        "train_batch_size=64", "minibatch_size=32", "num_epochs=1", "num_envs_per_env_runner=1",
        "env_config.max_episode_steps=20", "env_config.observation.width_px=24", "env_config.observation.height_px=16",
        "augmentation.type=random_shift", f"augmentation.method={method}", "augmentation.pad_px=3", "seed=0"])
    return config.build_algo()


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_tiny_ppo_iteration_shifts_learner_batches_but_not_sampling(ray_session):
    from ray.rllib.connectors.learner import NumpyToTensor
    from ray.rllib.core.columns import Columns

    from control.training.augmentation_connector import RandomShift

    algo = _tiny_camera_algo("rad")
    try:
        result = algo.train()
        assert result["training_iteration"] == 1
        learner = algo.learner_group._learner
        names = [type(piece) for piece in learner._learner_connector.connectors]
        assert names.index(RandomShift) == names.index(NumpyToTensor) - 1
        runner = algo.env_runner
        assert not any(isinstance(p, RandomShift) for p in runner._env_to_module.connectors)

        episodes = runner.sample(num_timesteps=16)
        sampled = [np.array(ep.get_observations()) for ep in episodes]
        batch = learner._learner_connector(rl_module=learner.module, batch={}, episodes=episodes, shared_data={},
                                           metrics=learner.metrics)
        learner_obs = np.asarray(batch["default_policy"][Columns.OBS].cpu())
        # Per episode the batch holds its steps' observations plus one bootstrap step (the final observation).
        raw = np.concatenate(sampled)
        for ep, obs in zip(episodes, sampled, strict=True):  # the episodes (what inference saw) keep the raw frames
            np.testing.assert_array_equal(np.array(ep.get_observations())[:len(obs)], obs)
        assert learner_obs.shape == raw.shape and learner_obs.dtype == raw.dtype
        assert not np.array_equal(learner_obs, raw)
        per_frame = [_is_edge_padded_crop(learner_obs[i], raw[i], 3) for i in range(len(raw))]
        assert all(per_frame)
    finally:
        algo.stop()


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_tiny_ppo_iteration_with_drac_trains_on_raw_frames_and_reports_the_regulariser(ray_session):
    algo = _tiny_camera_algo("drac")
    try:
        result = algo.train()
        learner = result["learners"]["default_policy"]
        # A random CNN is not shift-invariant: the regulariser is positive and finite.
        assert 0 < learner["drac_policy_kl"] < float("inf") and 0 <= learner["drac_value_mse"] < float("inf")
        assert np.isfinite(learner["total_loss"])
        from ray.rllib.core.columns import Columns

        from control.training.augmentation_connector import AUGMENTED_OBS

        episodes = algo.env_runner.sample(num_timesteps=16)
        raw = np.concatenate([np.array(ep.get_observations()) for ep in episodes])
        own = algo.learner_group._learner
        batch = own._learner_connector(rl_module=own.module, batch={}, episodes=episodes, shared_data={}, metrics=own.metrics)
        np.testing.assert_array_equal(np.asarray(batch["default_policy"][Columns.OBS].cpu()), raw)  # PPO's loss: raw frames
        assert not np.array_equal(np.asarray(batch["default_policy"][AUGMENTED_OBS].cpu()), raw)
    finally:
        algo.stop()


def test_the_procedural_camera_config_loads_validates_and_turns_both_on():
    from control.training.augmentation_connector import AugmentedPPOTorchLearner

    path = CAMERA.with_name("ppo_camera_procedural_config.yaml")
    config, resolved = load_ppo_config(path)
    assert resolved.augmentation["type"] == "random_shift" and resolved.augmentation["method"] == "drac"
    assert config.learner_class is AugmentedPPOTorchLearner
    observation = resolved.env_config["observation"]
    assert observation["type"] == "camera" and observation["randomize"]["enabled"] is True
    assert resolved.env_config["track"] == "procedural" and resolved.env_config["start"]["direction"] == "random"
