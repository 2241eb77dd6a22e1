"""ONNX export of the DeepRacer sensor types (stereo_camera, deepracer_lidar): torch equality, sensor names, rollouts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from control.rollout.cli import main as rollout_main
from tests.test_export import _onnx_outputs, _recorded, train_and_export

# One tiny training per new Box type: the stereo pair through the CNN (discrete), DeepRacer's raw lidar through
# the MLP with the MeanStdFilter (continuous), and its discretized sectors (discrete, a lidar_config in the metadata).
RUNS = {
    "stereo_discrete": ["ppo_camera_config.yaml", "--set", "model.fcnet_hiddens=[32]",
                        "--set", "env_config.observation={type: stereo_camera, width_px: 64, height_px: 48, normalize: true}",
                        "--set", "env_config.action={type: discrete}"],
    "lidar_raw_filtered": ["ppo_vlidar_config.yaml", "--set", "env_config.observation={type: deepracer_lidar}",
                           "--set", "observation_filter=MeanStdFilter"],
    "lidar_discretized": ["ppo_vlidar_config.yaml", "--set", "env_config.action={type: discrete}", "--set",
                          "env_config.observation={type: deepracer_lidar, mode: discretized, num_values_per_sector: 4}"],
}
OBSERVATIONS = 300
SENSORS = {"stereo_discrete": ["STEREO_CAMERAS"], "lidar_raw_filtered": ["LIDAR"],
           "lidar_discretized": ["DISCRETIZED_SECTOR_LIDAR"]}

# Every observation type the env offers, small; the sensors DeepRacer's model_metadata.json names for it
# (aws-deepracer-community/deepracer-simapp bundle/markov/architecture/constants.py, class Input).
SMALL_CAMERA = {"width_px": 32, "height_px": 24}
TYPE_SENSORS = [
    ({"type": "vlidar"}, ["LIDAR"]),
    ({"type": "camera", **SMALL_CAMERA}, ["FRONT_FACING_CAMERA"]),
    ({"type": "stereo_camera", **SMALL_CAMERA}, ["STEREO_CAMERAS"]),
    ({"type": "deepracer_lidar"}, ["LIDAR"]),
    ({"type": "deepracer_lidar", "mode": "sectors"}, ["SECTOR_LIDAR"]),
    ({"type": "deepracer_lidar", "mode": "discretized"}, ["DISCRETIZED_SECTOR_LIDAR"]),
    ({"type": "both", "camera": SMALL_CAMERA}, ["FRONT_FACING_CAMERA", "LIDAR"]),
    ({"type": "deepracer_evo", "camera": SMALL_CAMERA, "lidar": {"mode": "sectors"}}, ["FRONT_FACING_CAMERA", "SECTOR_LIDAR"]),
    ({"type": "deepracer_evo", "camera": SMALL_CAMERA, "stereo_baseline_m": 0.06}, ["STEREO_CAMERAS", "LIDAR"]),
]


def _observation_type(config):
    import control.env  # noqa: F401 - registers the DeepRacer lidar types
    from control.env.observations import make_observation_type

    return make_observation_type(config)


def _mapping():
    from control.export.graph import CommandMapping

    return CommandMapping("continuous", np.array([-30.0, 30.0]), np.array([0.5, 4.0]), 30.0, 4.0)


@pytest.mark.parametrize(("config", "sensors"), TYPE_SENSORS, ids=[str(c) for c, _ in TYPE_SENSORS])
def test_model_metadata_names_deepracer_s_sensors_for_every_observation_type(config, sensors):
    from control.export.metadata import model_metadata, observation_layout
    from control.sim.base import DEEPRACER_LIMITS

    observation_type = _observation_type(config)
    metadata = model_metadata(_mapping(), observation_type, {})
    assert metadata["sensor"] == sensors
    # DeepRacer's parser reads DISCRETIZED_SECTOR_LIDAR's bins from lidar_config and nothing else from it.
    assert ("lidar_config" in metadata) == ("DISCRETIZED_SECTOR_LIDAR" in sensors)
    layout = observation_layout(observation_type, DEEPRACER_LIMITS)
    assert layout["type"] == config["type"]


def test_discretized_lidar_metadata_carries_its_bins_in_deepracer_s_lidar_config():
    from control.export.metadata import model_metadata

    observation_type = _observation_type({"type": "deepracer_lidar", "mode": "discretized", "num_sectors": 16,
                                          "num_values_per_sector": 3, "sector_clipping_dist_m": 2.0})
    assert model_metadata(_mapping(), observation_type, {})["lidar_config"] == {
        "num_sectors": 16, "num_values_per_sector": 3, "clipping_dist": 2.0}


def test_every_observation_type_passes_the_export_check():
    """Box types export as one input; the Dict types (both, deepracer_evo) as one input per key."""
    from control.export.exporter import check_exportable

    for config, _ in TYPE_SENSORS:
        observation_type = _observation_type(config)
        check_exportable(observation_type, observation_type.space())


def test_a_dict_the_dict_policy_cannot_encode_is_a_one_line_export_error():
    import gymnasium as gym

    from control.export.exporter import check_exportable
    from control.export.graph import ExportError

    observation_type = _observation_type({"type": "both", "camera": SMALL_CAMERA})
    image = observation_type.space()["camera"]
    two_images = gym.spaces.Dict({"left": image, "right": image})
    with pytest.raises(ExportError) as raised:
        check_exportable(observation_type, two_images)
    message = str(raised.value)
    assert "\n" not in message and message.startswith("observation type both (Dict(left: ")
    assert "exactly one image Box" in message and "one vector Box" in message


@pytest.fixture(scope="module")
def exported(ray_session, tmp_path_factory):
    """results dir with one tiny trained and exported run per RUNS entry."""
    return train_and_export(tmp_path_factory.mktemp("results"), RUNS, OBSERVATIONS)


@pytest.mark.ray
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_actions_equal_the_torch_policy_on_each_sensor_s_observations(exported, name):
    model = exported / name / "export" / "model.onnx"
    info = json.loads((model.parent / "export_info.json").read_text())
    assert info["check"]["passed"] and info["check"]["observations"] == OBSERVATIONS
    env, _, observations, actions = _recorded(exported, name, OBSERVATIONS, seed=11)  # not the export's own seed
    assert info["inputs"][0]["shape"] == ["batch", *observations.shape[1:]]
    out = _onnx_outputs(model, observations)
    steering, speed, _ = env.action_type.to_commands(actions)
    if info["action"]["type"] == "discrete":
        np.testing.assert_array_equal(out["action"], actions)
    else:
        assert np.max(np.abs(out["action"] - actions)) <= 1e-5
    np.testing.assert_allclose(out["steering_deg"], steering, atol=1e-3)
    np.testing.assert_allclose(out["speed_mps"], speed, atol=1e-4)


@pytest.mark.ray
def test_exported_metadata_and_layout_describe_the_sensor(exported):
    for name, sensors in SENSORS.items():
        metadata = json.loads((exported / name / "export" / "model_metadata.json").read_text())
        assert metadata["sensor"] == sensors, name
    discretized = json.loads((exported / "lidar_discretized" / "export" / "model_metadata.json").read_text())
    assert discretized["lidar_config"] == {"num_sectors": 8, "num_values_per_sector": 4, "clipping_dist": 0.5}
    stereo = json.loads((exported / "stereo_discrete" / "export" / "export_info.json").read_text())
    assert stereo["observation"]["cameras"] == ["left", "right"] and stereo["observation"]["baseline_m"] == 0.06
    assert stereo["inputs"][0]["shape"] == ["batch", 48, 64, 2]
    lidar = json.loads((exported / "lidar_raw_filtered" / "export" / "export_info.json").read_text())
    assert lidar["observation_filter"]["type"] == "MeanStdFilter"
    layout = lidar["observation"]
    assert layout["samples"] == len(layout["sample_angles_deg"]) == 64 and layout["clipping_dist_m"] == 1.0
    assert layout["sample_angles_deg"][0] == pytest.approx(-150.0, abs=1e-3)  # right first, as a LaserScan


@pytest.mark.ray
def test_an_onnx_rollout_of_a_lidar_policy_renders_its_video_and_matches_torch(exported, tmp_path):
    runs = {}
    for kind, source in (("torch", ["-n", "lidar_raw_filtered", "--results_dir", str(exported)]),
                         ("onnx", ["--onnx", str(exported / "lidar_raw_filtered" / "export" / "model.onnx")])):
        out = tmp_path / kind
        assert rollout_main([*source, "--episodes", "1", "--seed", "4", "--max_episode_steps", "30",
                             "--no_progress", "--out", str(out)]) == 0
        runs[kind] = json.loads((out / "metrics.json").read_text())
        assert (out / "episode_000.mp4").stat().st_size > 0 and (out / "trajectories.png").is_file()
    assert runs["onnx"]["policy_runtime"] == "onnxruntime" and runs["torch"]["policy_runtime"] == "torch"
    # The same policy drives: float32 rounding of the two runtimes (<= 1e-5 in the action) moves the car by
    # micrometres over an episode, so completion agrees far inside 0.1 %.
    for ours, theirs in zip(runs["onnx"]["episodes"], runs["torch"]["episodes"], strict=True):
        assert ours["completion_pct"] == pytest.approx(theirs["completion_pct"], rel=1e-3, abs=1e-3)
