"""ONNX export of really trained tiny policies: equality with the torch policy, DeepRacer metadata, ONNX rollouts."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from control.export.cli import main as export_main
from control.rollout.cli import main as rollout_main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "resources/configs"
TINY = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1", "--set", "env_config.max_episode_steps=60", "--stop_iteration", "1",
        "-v", "0"]
# The two shipped networks: vlidar (continuous, with the MeanStdFilter) and camera (frame_stack 2, 64x48 gray;
# DeepRacer's discrete actions, no filter). Two tiny trainings cover every combination the export must handle.
RUNS = {
    "vlidar_filtered": ["ppo_vlidar_config.yaml", "--set", "observation_filter=MeanStdFilter"],
    "camera_discrete": ["ppo_camera_config.yaml", "--set", "model.fcnet_hiddens=[32]",
                        "--set", "env_config.action={type: discrete}"],
}
OBSERVATIONS = 1000

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def exported(ray_session, tmp_path_factory):
    """results dir with one tiny trained and exported run per RUNS entry."""
    return train_and_export(tmp_path_factory.mktemp("results"), RUNS, OBSERVATIONS)


def train_and_export(results: Path, runs: dict, observations: int) -> Path:
    """Each run of `runs` (name: (config file, extra flags)) trained tiny and exported into `results`."""
    from control.training.cli import main as train_main

    for name, (config, *extra) in runs.items():
        assert train_main([str(CONFIGS / config), "-n", name, "--results_dir", str(results), *TINY, *extra]) == 0
        assert export_main(["-n", name, "--results_dir", str(results), "--observations", str(observations)]) == 0
    return results


def _recorded(results: Path, name: str, steps: int, seed: int):
    """The env, the checkpoint's torch policy (filter and all), and the observations it met while driving `steps`
    steps from reset(seed) (a Box: one array; a Dict: one array per key), with its actions."""
    from control.export.verify import record_observations
    from control.rollout import inference

    checkpoint = inference.resolve_checkpoint(None, name, results)
    run = inference.load_run_config(checkpoint)
    env = inference.make_env(run, {}, render=False)
    policy = inference.Policy(checkpoint, observation_filter=run.observation_filter)
    recording = record_observations(env, policy, steps, seed)
    return env, policy, recording.observations, recording.actions


def _onnx_outputs(model: Path, observations: np.ndarray) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"obs": observations}), strict=True))


@pytest.mark.parametrize("name", list(RUNS))
def test_onnx_actions_equal_the_torch_policy_on_recorded_observations(exported, name):
    import onnx

    model = exported / name / "export" / "model.onnx"
    onnx.checker.check_model(onnx.load(str(model)), full_check=True)
    info = json.loads((model.parent / "export_info.json").read_text())
    assert info["check"]["passed"] and info["check"]["observations"] == OBSERVATIONS
    # An independent recording (another seed) than the export's own check.
    env, policy, observations, actions = _recorded(exported, name, OBSERVATIONS, seed=11)
    out = _onnx_outputs(model, observations)
    steering, speed, _ = env.action_type.to_commands(actions)
    if name == "camera_discrete":
        np.testing.assert_array_equal(out["action"], actions)
    else:
        assert np.max(np.abs(out["action"] - actions)) <= 1e-5
    # The car's command in units: the env's own mapping of the torch action.
    np.testing.assert_allclose(out["steering_deg"], steering, atol=1e-3)
    np.testing.assert_allclose(out["speed_mps"], speed, atol=1e-4)
    assert [i["name"] for i in info["inputs"]] == ["obs"] and [o["name"] for o in info["outputs"]] == [
        "action", "steering_deg", "speed_mps"]
    assert info["opset"] == onnx.load(str(model)).opset_import[0].version


def test_the_mean_std_filter_is_inside_the_graph(exported):
    """The filtered policy's graph takes raw observations: feeding it pre-normalised ones gives other actions."""
    _, policy, observations, actions = _recorded(exported, "vlidar_filtered", 300, seed=5)
    info = json.loads((exported / "vlidar_filtered" / "export" / "export_info.json").read_text())
    assert info["observation_filter"]["type"] == "MeanStdFilter" and info["observation_filter"]["observations"] > 0
    model = exported / "vlidar_filtered" / "export" / "model.onnx"
    raw = _onnx_outputs(model, observations)["action"]
    twice = _onnx_outputs(model, np.stack([policy.filter(o) for o in observations]).astype(np.float32))["action"]
    assert np.max(np.abs(raw - actions)) <= 1e-5
    assert np.max(np.abs(twice - actions)) > 1e-3
    camera = json.loads((exported / "camera_discrete" / "export" / "export_info.json").read_text())
    assert camera["observation_filter"] == {"type": "NoFilter"}


def test_model_metadata_is_deepracer_s_form_for_continuous_and_discrete(exported):
    from control.env.actions import DEEPRACER_DEFAULT_ACTIONS

    continuous = json.loads((exported / "vlidar_filtered" / "export" / "model_metadata.json").read_text())
    assert continuous["action_space_type"] == "continuous"
    assert continuous["action_space"] == {"steering_angle": {"high": 30.0, "low": -30.0},
                                          "speed": {"high": 4.0, "low": 0.5}}  # the shipped config's ranges
    assert continuous["sensor"] == ["LIDAR"] and continuous["training_algorithm"] == "clipped_ppo"
    assert continuous["neural_network"].startswith("DEEP_CONVOLUTIONAL_NETWORK") and continuous["version"]
    camera = json.loads((exported / "camera_discrete" / "export" / "model_metadata.json").read_text())
    assert camera["action_space_type"] == "discrete"
    assert camera["action_space"] == [{**a, "index": i} for i, a in enumerate(DEEPRACER_DEFAULT_ACTIONS)]
    assert camera["sensor"] == ["FRONT_FACING_CAMERA"] and camera["neural_network"] == "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW"
    assert set(camera) == {"action_space", "action_space_type", "sensor", "neural_network", "training_algorithm", "version"}


def test_export_info_describes_the_observation_and_where_the_model_came_from(exported):
    camera = json.loads((exported / "camera_discrete" / "export" / "export_info.json").read_text())
    layout = camera["observation"]
    assert (layout["width_px"], layout["height_px"], layout["channels_per_frame"], layout["frame_stack"]) == (64, 48, 1, 2)
    assert camera["inputs"][0]["shape"] == ["batch", 48, 64, 2] and camera["inputs"][0]["dtype"] == "float32"
    assert "/checkpoint_" in camera["checkpoint"] and camera["config_source"].endswith("camera_discrete/config.yaml")
    vlidar = json.loads((exported / "vlidar_filtered" / "export" / "export_info.json").read_text())["observation"]
    assert vlidar["rays"] == len(vlidar["ray_angles_deg"]) == 32 and vlidar["max_range_m"] == 5.0
    assert vlidar["ray_angles_deg"][0] == -90.0 and vlidar["ray_angles_deg"][-1] == 90.0


@pytest.mark.parametrize("name", list(RUNS))
def test_an_onnx_rollout_gives_the_torch_rollout_s_episode_metrics(exported, tmp_path, name):
    runs = {}
    for kind, source in (("torch", ["-n", name, "--results_dir", str(exported)]),
                         ("onnx", ["--onnx", str(exported / name / "export" / "model.onnx")])):
        out = tmp_path / kind
        assert rollout_main([*source, "--episodes", "2", "--seed", "4", "--max_episode_steps", "60", "--no_video",
                             "--no_progress", "--out", str(out)]) == 0
        runs[kind] = json.loads((out / "metrics.json").read_text())
    assert runs["onnx"]["policy_runtime"] == "onnxruntime" and runs["torch"]["policy_runtime"] == "torch"
    for ours, theirs in zip(runs["onnx"]["episodes"], runs["torch"]["episodes"], strict=True):
        assert ours.keys() == theirs.keys()
        for key, value in theirs.items():
            # float32 rounding of the two runtimes (<= 1e-6 in the action) moves metrics in the 6th-8th digit: 60 steps of
            # closed-loop driving compound it (max_speed_mps once differed by 1.2e-6 relative).
            assert ours[key] == (pytest.approx(value, rel=1e-5, abs=1e-9) if isinstance(value, float) else value), key


def test_the_onnx_rollout_imports_neither_torch_nor_ray(exported, tmp_path):
    model = exported / "vlidar_filtered" / "export" / "model.onnx"
    code = textwrap.dedent(f"""
        import json, runpy, sys
        sys.path.insert(0, {str(REPO)!r})  # as `python ppo_inference_ray.py` puts the script's folder first
        sys.argv = ["ppo_inference_ray.py", "--onnx", {str(model)!r}, "--episodes", "1", "--max_episode_steps", "20",
                    "--out", {str(tmp_path / 'o')!r}, "--no_progress"]
        try:
            runpy.run_path({str(REPO / 'ppo_inference_ray.py')!r}, run_name="__main__")
        except SystemExit as exc:
            print(json.dumps({{"rc": exc.code, "torch": "torch" in sys.modules, "ray": "ray" in sys.modules}}))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"rc": 0, "torch": False, "ray": False}
    assert (tmp_path / "o" / "episode_000.mp4").stat().st_size > 0 and (tmp_path / "o" / "trajectories.png").is_file()


def test_bad_onnx_and_export_inputs_are_one_line_errors(exported, tmp_path, capsys):
    assert rollout_main(["--onnx", str(tmp_path / "none.onnx"), "--no_progress"]) == 2
    assert rollout_main(["--onnx", str(exported / "camera_discrete" / "export" / "model.onnx"), "--explore"]) == 2
    assert export_main(["-n", "vlidar_filterd", "--results_dir", str(exported)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines), lines
    assert "does not exist" in lines[0] and "deterministic" in lines[1] and "did you mean 'vlidar_filtered'" in lines[2]
