"""PPO on the Dict observations (camera + lidar: `both`, `deepracer_evo`): the module, training, rollout and ONNX export."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from control.errors import ConfigError
from tests.test_export import CONFIGS, REPO, _recorded, train_and_export

SMALL_CAMERA = {"width_px": 32, "height_px": 24}
SMALL_CNN = [[8, [4, 4], 2], [16, [3, 3], 2]]  # 24x32 -> 12x16 -> 6x8 ('same' padding): 6 * 8 * 16 = 768 features
CNN_FEATURES = 768
CONTINUOUS = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
OBSERVATIONS = {
    "both": {"type": "both", "camera": SMALL_CAMERA},  # camera (24, 32, 1) uint8 + vlidar (34,)
    "deepracer_evo": {"type": "deepracer_evo", "camera": SMALL_CAMERA, "stereo_baseline_m": 0.06},  # (24, 32, 2) + (64,)
}
# One tiny training per Dict type: `both` with a shared encoder, discrete actions and the image augmentation;
# the shipped Evo config (stereo pair + DeepRacer's lidar, object avoidance, separate value network) as it is.
RUNS = {
    "both": ["ppo_camera_config.yaml", "--set", "env_config.observation={type: both, camera: {width_px: 32, height_px: 24}}",
             "--set", f"model.conv_filters={SMALL_CNN}", "--set", "model.fcnet_hiddens=[32]",
             "--set", "model.vf_share_layers=true", "--set", "env_config.action={type: discrete}",
             "--set", "augmentation={type: random_shift, pad_px: 2}"],
    "deepracer_evo": ["ppo_deepracer_evo_config.yaml",
                      "--set", f"env_config.reward={REPO / 'resources/rewards/object_avoidance_reward.py'}"],
}
EXPORT_OBSERVATIONS = 200


def _space(name: str) -> gym.spaces.Dict:
    import control.env  # noqa: F401 - registers deepracer_evo
    from control.env.observations import make_observation_type

    return make_observation_type(OBSERVATIONS[name]).space()


def _module(space: gym.Space, vf_share_layers: bool):
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from control.training.dict_module import DictPPOCatalog

    spec = RLModuleSpec(module_class=DefaultPPOTorchRLModule, catalog_class=DictPPOCatalog, observation_space=space,
                        action_space=CONTINUOUS, model_config={"conv_filters": SMALL_CNN, "fcnet_hiddens": [32],
                                                               "head_fcnet_hiddens": [16], "vf_share_layers": vf_share_layers})
    return spec.build()


def _batch(space: gym.spaces.Dict, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    space.seed(seed)
    samples = [space.sample() for _ in range(n)]
    return {key: torch.as_tensor(np.stack([s[key] for s in samples])) for key in space.spaces}


# --------------------------------------------------------------------------- the module (no Ray)
@pytest.mark.parametrize("vf_share_layers", [True, False], ids=["shared", "separate"])
@pytest.mark.parametrize("name", list(OBSERVATIONS))
def test_forward_on_a_dict_batch_gives_actions_and_values_of_the_right_shapes(name, vf_share_layers):
    space = _space(name)
    module = _module(space, vf_share_layers)
    batch = _batch(space, 5)
    out = module.forward_train({"obs": batch})
    assert out["embeddings"].shape == (5, CNN_FEATURES + 32)  # the CNN's features and the MLP's, concatenated
    assert out["action_dist_inputs"].shape == (5, 4)  # a diagonal Gaussian over (steering, speed): means, log stds
    assert module.compute_values({"obs": batch}).shape == (5,)
    # vf_share_layers: one CNN + MLP for both heads, or one for the actor and one for the critic.
    encoders = [m for m in module.modules() if type(m).__name__ == "TorchImageVectorEncoder"]
    assert len(encoders) == (1 if vf_share_layers else 2)


def test_a_uint8_image_is_scaled_to_0_1_inside_the_encoder():
    from control.training.dict_module import TorchImageVectorEncoder

    space = _space("both")
    module = _module(space, vf_share_layers=True)
    (encoder,) = [m for m in module.modules() if isinstance(m, TorchImageVectorEncoder)]
    batch = _batch(space, 3)
    as_float = {**batch, "camera": batch["camera"].to(torch.float32) / 255.0}
    with torch.no_grad():
        from_uint8 = encoder({"obs": batch})["encoder_out"]
        from_float = encoder({"obs": as_float})["encoder_out"]
    torch.testing.assert_close(from_uint8, from_float)
    assert not torch.equal(from_uint8, encoder({"obs": {**batch, "camera": batch["camera"].to(torch.float32)}})["encoder_out"])


def test_the_image_part_changes_the_action():
    """Both parts reach the heads: a different image alone changes the policy's output."""
    space = _space("deepracer_evo")
    module = _module(space, vf_share_layers=False)
    batch = _batch(space, 2)
    other = {**batch, "camera": 255 - batch["camera"]}
    with torch.no_grad():
        a = module.forward_inference({"obs": batch})["action_dist_inputs"]
        b = module.forward_inference({"obs": other})["action_dist_inputs"]
        c = module.forward_inference({"obs": {**batch, "lidar": batch["lidar"] * 0.5}})["action_dist_inputs"]
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_a_dict_of_two_images_and_no_vector_is_a_one_line_error():
    from control.training.dict_module import DictPPOCatalog

    image = _space("both")["camera"]
    with pytest.raises(ConfigError) as raised:
        DictPPOCatalog(gym.spaces.Dict({"left": image, "right": image}), CONTINUOUS, {"conv_filters": SMALL_CNN})
    message = str(raised.value)
    assert "\n" not in message and message.startswith("a Dict observation (left: (24, 32, 1), right: (24, 32, 1)) cannot")


def test_a_box_config_keeps_rllib_s_default_module_and_a_dict_config_gets_the_dict_catalog():
    from ray.rllib.algorithms.ppo import PPOConfig

    from control.training.config_loader import load_ppo_config
    from control.training.dict_module import DictPPOCatalog

    box_config, _ = load_ppo_config(CONFIGS / "ppo_camera_config.yaml")
    default_spec = PPOConfig().rl_module_spec
    assert box_config._rl_module_spec is None  # nothing of ours: RLlib's default spec, as before
    assert box_config.rl_module_spec.catalog_class is default_spec.catalog_class  # None: the module picks PPOCatalog
    assert box_config.rl_module_spec.module_class is default_spec.module_class
    dict_config, _ = load_ppo_config(CONFIGS / "ppo_camera_config.yaml", [
        f"env_config.observation={json.dumps(OBSERVATIONS['both'])}", f"model.conv_filters={SMALL_CNN}"])
    assert dict_config.rl_module_spec.catalog_class is DictPPOCatalog
    assert dict_config.rl_module_spec.module_class is default_spec.module_class  # RLlib's PPO module, our encoder


def test_the_shipped_evo_config_loads_as_stereo_and_lidar_object_avoidance(monkeypatch):
    from control.training.config_loader import load_ppo_config
    from control.training.dict_module import DictPPOCatalog

    monkeypatch.chdir(REPO)  # its reward file is named relative to the repo root, as `make train` runs
    config, resolved = load_ppo_config(CONFIGS / "ppo_deepracer_evo_config.yaml")
    observation = resolved.env_config["observation"]
    assert observation["type"] == "deepracer_evo" and observation["stereo_baseline_m"] == 0.06
    assert resolved.env_config["race"]["type"] == "object_avoidance"
    assert config.rl_module_spec.catalog_class is DictPPOCatalog
    assert resolved.observation_filter == "NoFilter"


# --------------------------------------------------------------------------- trained for real (Ray)
@pytest.fixture(scope="module")
def trained(ray_session, tmp_path_factory):
    """results dir with one tiny trained and exported run per Dict type."""
    return train_and_export(tmp_path_factory.mktemp("results"), RUNS, EXPORT_OBSERVATIONS)


@pytest.mark.ray
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(RUNS))
def test_a_trained_dict_checkpoint_restores_and_rolls_out_deterministically(trained, name):
    from control.training.dict_module import DictPPOCatalog

    env, policy, observations, actions = _recorded(trained, name, 40, seed=5)
    assert isinstance(policy.module.catalog, DictPPOCatalog)
    assert policy.module.observation_space.keys() == env.observation_space.keys()
    assert isinstance(observations, dict) and set(observations) == set(env.observation_space.spaces)
    _, _, again, again_actions = _recorded(trained, name, 40, seed=5)
    np.testing.assert_array_equal(again_actions, actions)
    for key in observations:
        np.testing.assert_array_equal(again[key], observations[key])


@pytest.mark.ray
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(RUNS))
def test_a_dict_policy_exports_one_input_per_key_and_matches_torch(trained, name):
    import onnxruntime as ort

    from control.export.onnx_policy import OnnxPolicy

    model = trained / name / "export" / "model.onnx"
    info = json.loads((model.parent / "export_info.json").read_text())
    assert info["check"]["passed"] and info["check"]["observations"] == EXPORT_OBSERVATIONS
    env, policy, observations, actions = _recorded(trained, name, 100, seed=11)  # another seed than the export's check
    keys = list(env.observation_space.spaces)
    assert [i["name"] for i in info["inputs"]] == keys
    assert [o["name"] for o in info["outputs"]] == ["action", "steering_deg", "speed_mps"]
    assert info["observation"]["type"] == name and set(info["observation"]["keys"]) == set(keys)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == keys
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, observations), strict=True))
    if name == "both":  # discrete
        np.testing.assert_array_equal(out["action"], actions)
    else:
        assert np.max(np.abs(out["action"] - actions)) <= 1e-5
    steering, speed, _ = env.action_type.to_commands(actions)
    np.testing.assert_allclose(out["steering_deg"], steering, atol=1e-3)
    np.testing.assert_allclose(out["speed_mps"], speed, atol=1e-4)
    # The --onnx rollout's policy feeds the env's Dict and acts as the torch policy does.
    onnx_policy = OnnxPolicy(model)
    onnx_policy.check_env(env, name)
    for i in range(0, 100, 17):
        one = {key: observations[key][i] for key in keys}
        np.testing.assert_allclose(onnx_policy.compute_action(one), actions[i], atol=1e-5)
    metadata = json.loads((model.parent / "model_metadata.json").read_text())
    assert metadata["sensor"] == (["FRONT_FACING_CAMERA", "LIDAR"] if name == "both" else ["STEREO_CAMERAS", "LIDAR"])


@pytest.mark.ray
@pytest.mark.timeout(900)
def test_the_onnx_rollout_drives_a_dict_policy_and_refuses_a_box_env(trained, tmp_path):
    from control.env.racing_env import RacingEnv
    from control.errors import CheckpointError
    from control.export.onnx_policy import OnnxPolicy
    from control.rollout.cli import main as rollout_main

    model = trained / "deepracer_evo" / "export" / "model.onnx"
    assert rollout_main(["--onnx", str(model), "--episodes", "1", "--max_episode_steps", "20", "--no_video",
                         "--no_progress", "--seed", "3", "--out", str(tmp_path / "onnx")]) == 0
    metrics = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    assert len(metrics["episodes"]) == 1
    with pytest.raises(CheckpointError) as raised:
        OnnxPolicy(model).check_env(RacingEnv({"observation": {"type": "camera", **SMALL_CAMERA}}), "RacerCamera-v0")
    message = str(raised.value)
    assert "\n" not in message and "expects observations camera: (48, 64, 2) uint8, lidar: (64,) float32" in message

