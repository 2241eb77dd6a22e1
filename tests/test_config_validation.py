"""Config values are checked before Ray starts (types, ranges, RLlib's own validate()), and a config file
that is not YAML text is a one-line error: what a user sees instead of a traceback or a silent training.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from control.errors import ConfigError
from control.training.cli import main
from control.training.config_loader import apply_overrides, load_config_file, resolve_config, validate_ppo_config

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "resources" / "configs"
VLIDAR = CONFIGS / "ppo_vlidar_config.yaml"
WHERE = "config.yaml"


def validate(*overrides: str) -> None:
    """validate_ppo_config on the vlidar config with --set style overrides."""
    resolved = resolve_config(apply_overrides(load_config_file(VLIDAR), list(overrides)), where=WHERE)
    validate_ppo_config(resolved, where=WHERE)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_pass_validation(name):
    path = CONFIGS / name
    validate_ppo_config(resolve_config(load_config_file(path), where=name), where=name)


@pytest.mark.parametrize("assignment, message", [
    ("lr=fast", "lr must be a number > 0 or a schedule"),
    ("lr=-1e-4", "lr must be a number > 0"),
    ("lr=0", "lr must be a number > 0"),
    ("lr=true", "lr must be a number > 0"),  # a bool is not a number
    ("lr=.nan", "lr must be a number > 0"),
    ("lr=[[0, 1e-3]]", "lr must be a number > 0 or a schedule"),  # RLlib needs two or more points
    ("lr=[[100, 1e-3], [0, 1e-4]]", "lr must be a number > 0 or a schedule"),
    ("gamma=0", "gamma must be a number in (0, 1]"),
    ("gamma=1.5", "gamma must be a number in (0, 1]"),
    ("lambda_=-0.1", "lambda_ must be a number in [0, 1]"),
    ("lambda=1.1", "lambda_ must be a number in [0, 1]"),  # the old name, checked under the current one
    ("train_batch_size=-5", "train_batch_size must be a whole number >= 1"),
    ("train_batch_size=100.5", "train_batch_size must be a whole number >= 1"),
    ("minibatch_size=0", "minibatch_size must be a whole number >= 1"),
    ("minibatch_size=8000", "minibatch_size must be <= the train batch size (4000 steps"),
    ("num_epochs=0", "num_epochs must be a whole number >= 1"),
    ("num_sgd_iter=0", "num_epochs must be a whole number >= 1"),
    ("clip_param=-0.2", "clip_param must be a number > 0"),
    ("vf_clip_param=0", "vf_clip_param must be a number > 0"),
    ("entropy_coeff=-0.01", "entropy_coeff must be a number >= 0"),
    ("entropy_coeff=[[0, 0.01], [1000, -1]]", "entropy_coeff must be a number >= 0"),
    ("grad_clip=0", "grad_clip must be a number > 0 or null"),
    ("kl_target=0", "kl_target must be a number > 0"),
    ("use_gae=yes please", "use_gae must be true or false"),
    ("num_env_runners=-1", "num_env_runners must be a whole number >= 0"),
    ("num_envs_per_env_runner=0", "num_envs_per_env_runner must be a whole number >= 1"),
    ("rollout_fragment_length=0", "rollout_fragment_length must be a whole number >= 1 or 'auto'"),  # RLlib hangs
    ("rollout_fragment_length=soon", "rollout_fragment_length must be a whole number >= 1 or 'auto'"),
    ("batch_mode=whole_episodes", "batch_mode must be one of truncate_episodes, complete_episodes"),
    ("evaluation_interval=-1", "evaluation_interval must be a whole number >= 0 or null"),
    ("evaluation_duration_unit=laps", "evaluation_duration_unit must be one of episodes, timesteps"),
    ("model.fcnet_hiddens=[64, 0]", "model.fcnet_hiddens must be a list of positive whole numbers"),
    ("model.fcnet_hiddens=64", "model.fcnet_hiddens must be a list of positive whole numbers"),
    ("model.fcnet_activation=sigmoidish", "model.fcnet_activation must be an activation name"),
    ("model.conv_filters=[[16, 8]]", "model.conv_filters must be null or a list of [out_channels, kernel, stride]"),
    ("model.conv_filters=[[16, [8, 8], 0]]", "model.conv_filters must be null or a list of [out_channels, kernel, stride]"),
    ("model.vf_share_layers=maybe", "model.vf_share_layers must be true or false"),
])
def test_bad_value_is_a_one_line_error_naming_the_setting(assignment, message):
    with pytest.raises(ConfigError) as err:
        validate(assignment)
    text = str(err.value)
    assert text.startswith(f"{WHERE}: {message}"), text
    assert "\n" not in text and "(got " in text


DICT_OBSERVATIONS = ["{type: both, camera: {width_px: 32, height_px: 24}}",
                     "{type: deepracer_evo, camera: {width_px: 32, height_px: 24}}"]
SMALL_CNN = "model.conv_filters=[[8, [4, 4], 2], [16, [3, 3], 2]]"


@pytest.mark.parametrize("observation", DICT_OBSERVATIONS)
def test_a_dict_observation_validates_for_training(observation):
    """The Dict types train with the Dict policy (control/training/dict_module.py)."""
    validate(f"env_config.observation={observation}", SMALL_CNN)


@pytest.mark.parametrize("observation", DICT_OBSERVATIONS)
def test_a_dict_observation_with_the_mean_std_filter_is_refused_before_ray_starts(observation):
    """RLlib's MeanStdFilter fails on a Dict holding a uint8 image deep in an env runner; say so in one line first."""
    with pytest.raises(ConfigError) as err:
        validate(f"env_config.observation={observation}", SMALL_CNN, "observation_filter=MeanStdFilter")
    text = str(err.value)
    assert text.startswith(f"{WHERE}: observation_filter MeanStdFilter cannot filter the Dict observation")
    assert "NoFilter" in text and "\n" not in text


def test_a_dict_observation_with_an_lstm_is_refused_before_ray_starts():
    with pytest.raises(ConfigError) as err:
        validate(f"env_config.observation={DICT_OBSERVATIONS[0]}", SMALL_CNN, "model.use_lstm=true")
    text = str(err.value)
    assert text.startswith(f"{WHERE}: env_config.observation.type 'both': model_config.use_lstm cannot be combined")
    assert "\n" not in text


@pytest.mark.parametrize("assignment", [
    "lr=[[0, 3e-4], [1000000, 1e-5]]", "entropy_coeff=[[0, 0.01], [500000, 0.001]]", "grad_clip=null",
    "gamma=1", "lambda_=0", "rollout_fragment_length=250", "evaluation_interval=null", "model.conv_filters=null",
    "model.fcnet_activation=linear", "model.conv_filters=[[16, 8, 4, valid]]", "seed=7",
])
def test_good_values_pass(assignment):
    validate(assignment)


def test_rllib_own_validation_runs_and_is_one_line():
    # 8 envs x 300 steps cannot make a 4000-step batch: only RLlib's validate() knows that rule.
    with pytest.raises(ConfigError) as err:
        validate("rollout_fragment_length=300")
    text = str(err.value)
    assert text.startswith(f"{WHERE}: RLlib rejects the settings: ") and "rollout_fragment_length" in text
    assert "\n" not in text and "To suppress" not in text


def test_validation_needs_no_ray():
    # In a fresh interpreter: other tests of this session may have started Ray in this one.
    code = ("import ray; from control.training.config_loader import load_ppo_config; "
            "load_ppo_config('resources/configs/ppo_vlidar_config.yaml'); assert not ray.is_initialized(); print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def test_cli_bad_value_exits_2_with_one_line_and_leaves_no_run_folder(tmp_path, capsys):
    status = main([str(VLIDAR), "-n", "bad", "--results_dir", str(tmp_path), "--set", "lr=fast", "-v", "0"])
    err = capsys.readouterr().err
    assert status == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {VLIDAR}: lr must be a number > 0 or a schedule [[0, v0], [timestep, v], ...] "
                      "with increasing timesteps (got 'fast')"], err
    assert "Traceback" not in err
    assert not (tmp_path / "bad").exists()  # rejected before the run folder (and Ray) were made


# --- config files that are not YAML text ---

def load_error(path: Path) -> str:
    """The one-line message load_config_file raises for `path`."""
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    text = str(err.value)
    assert "\n" not in text
    assert str(path) in text
    return text


def test_binary_file_is_a_one_line_error():
    # A user passing a track file where the config goes.
    assert "is binary, not YAML text" in load_error(REPO / "resources" / "tracks" / "oval.npy")


def test_non_utf8_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("# réglages\nlr: 1.0e-4\n".encode("latin-1"))
    assert "is not UTF-8 text (byte 0xe9 at offset 3)" in load_error(path)


def test_utf8_with_bom_loads(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfenv: RacerVLidar-v0\n")
    assert load_config_file(path) == {"env": "RacerVLidar-v0"}


def test_directory_is_a_one_line_error(tmp_path):
    assert "is a directory" in load_error(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    assert "is empty" in load_error(path)


@pytest.mark.parametrize("text, kind", [("- lr\n- gamma\n", "list"), ("just words\n", "str"), ("42\n", "int")])
def test_yaml_that_is_not_a_mapping_is_a_one_line_error(tmp_path, text, kind):
    path = tmp_path / "notmap.yaml"
    path.write_text(text)
    assert f"must hold a mapping of settings (key: value lines), not a {kind}" in load_error(path)


def test_bad_yaml_is_a_one_line_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("lr: [1, 2\ngamma: 0.99\n")
    assert "bad YAML" in load_error(path)


def test_cli_binary_config_exits_2_without_a_traceback(tmp_path, capsys):
    track = REPO / "resources" / "tracks" / "oval.npy"
    assert main([str(track), "-n", "bin", "--results_dir", str(tmp_path), "-v", "0"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"error: config file '{track}' is binary" in err


# --- one schema mechanism for every env_config section (control/config_schema.py) ---

def env_error(config: dict) -> str:
    """The one-line message validate_env_config raises for `config`."""
    from control.env.config import validate_env_config

    with pytest.raises(ConfigError) as err:
        validate_env_config(config)
    text = str(err.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("config, where", [
    ({"start": {"bogus": 1}}, "env_config.start"),
    ({"termination": {"bogus": 1}}, "env_config.termination"),
    ({"procedural": {"bogus": 1}}, "env_config.procedural"),
    ({"observation": {"type": "vlidar", "bogus": 1}}, "env_config.observation"),
    ({"observation": {"type": "camera", "bogus": 1}}, "env_config.observation"),
    ({"observation": {"type": "both", "camera": {"bogus": 1}}}, "env_config.observation.camera"),
    ({"action": {"type": "continuous", "bogus": 1}}, "env_config.action"),
    ({"action": {"type": "discrete", "actions": [{"steering_angle": 0, "speed": 1, "bogus": 1}]}}, "env_config.action.actions[0]"),
    ({"builtin": {"bogus": 1}}, "env_config.builtin"),
    ({"builtin": {"camera": {"bogus": 1}}}, "env_config.builtin.camera"),
    ({"carla": {"bogus": 1}}, "env_config.carla"),
    ({"carla": {"route": {"bogus": 1}}}, "env_config.carla.route"),
])
def test_an_unknown_key_in_any_section_names_the_section(config, where):
    assert env_error(config).startswith(f"unknown key 'bogus' in {where}")


@pytest.mark.parametrize("config, message", [
    ({"observation": {"type": "vlidar", "num_ray": 8}}, "unknown key 'num_ray' in env_config.observation (did you mean 'num_rays'?)"),
    ({"max_episode_steps": 0}, "env_config.max_episode_steps must be a positive integer, got 0"),
    ({"max_episode_steps": "100"}, "env_config.max_episode_steps must be a positive integer, got '100'"),  # never coerced
    ({"termination": {"off_track": "no"}}, "env_config.termination.off_track must be true or false, got 'no'"),
    ({"builtin": {"max_speed_mps": True}}, "env_config.builtin.max_speed_mps must be a positive number, got True"),
    ({"builtin": {"camera": {"pitch_deg": 10}}}, "unknown key 'pitch_deg' in env_config.builtin.camera (did you mean 'pitch_down_deg'?)"),
    ({"start": {"direction": "clockwse"}}, "env_config.start.direction is 'clockwse' (did you mean 'clockwise'?)"),
    ({"observation": {"type": "camera", "frame_stack": 1.5}}, "env_config.observation.frame_stack must be a positive integer, got 1.5"),
    ({"action": {"type": "discrete", "actions": [{"speed": 1}]}}, "env_config.action.actions[0] is missing steering_angle"),
])
def test_a_bad_value_is_one_line_naming_its_place(config, message):
    assert env_error(config).startswith(message)


def test_discrete_actions_are_checked_against_the_backends_limits():
    """The car's top speed and steering lock come from the backend's VehicleLimits, not from literals."""
    from control.env.config import validate_env_config

    fast = {"type": "discrete", "actions": [{"steering_angle": 0, "speed": 4.5}]}
    assert "speed in [0, 4] m/s" in env_error({"action": fast})
    validate_env_config({"action": fast, "builtin": {"max_speed_mps": 5.0}})  # a faster car accepts it
    wide = {"type": "discrete", "actions": [{"steering_angle": 25, "speed": 1}]}
    assert "steering_angle must be in [-20, 20] degrees" in env_error({"action": wide, "builtin": {"max_steering_deg": 20}})


def test_defaults_come_from_the_models_and_the_backend():
    from control.env.config import DEFAULT_ENV_CONFIG
    from control.sim.base import DEEPRACER_LIMITS
    from control.sim.builtin import DEFAULT_BUILTIN_CONFIG
    from control.track.generate import DEFAULT_LENGTH_RANGE_M, generate_track

    assert DEFAULT_BUILTIN_CONFIG["max_speed_mps"] == DEEPRACER_LIMITS.max_speed_mps
    assert tuple(DEFAULT_ENV_CONFIG["procedural"]["length_m"]) == DEFAULT_LENGTH_RANGE_M
    assert DEFAULT_LENGTH_RANGE_M[0] <= generate_track(3).length_m <= DEFAULT_LENGTH_RANGE_M[1] + 1.0


def test_carla_camera_takes_the_camera_spec_keys_and_mounts_looking_down():
    """Both backends name the camera alike (CameraSpec's keys); pitch_down_deg > 0 looks down in CARLA too."""
    from control.carla.backend import CarlaSimulator
    from control.sim.base import Pose
    from tests import fake_carla as fc

    fc._reset_all()
    try:
        server = fc._start_server(port=2000)
        camera = {"width_px": 40, "height_px": 30, "fov_deg": 70.0, "x_offset_m": 1.2, "height_m": 1.6, "pitch_down_deg": 12.0}
        sim = CarlaSimulator({"avoid_server_init": True, "timeout_s": 1.0, "camera": camera}, None, run_name="test",
                             runner_index=0, is_evaluation=False, carla_module=fc)
        (pos,), (heading,) = sim.load_track().point_at(0.0)
        sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))
        (sensor,) = [a for a in server.actors.values() if a.type_id == "sensor.camera.rgb"]
        assert (sensor.attributes["image_size_x"], sensor.attributes["image_size_y"], sensor.attributes["fov"]) == ("40", "30", "70.0")
        mount = sensor._transform
        assert (mount.location.x, mount.location.z, mount.rotation.pitch) == (1.2, 1.6, -12.0)  # CARLA: negative pitch looks down
        assert sim.camera_spec.pitch_down_deg == 12.0 and sim.camera_image().shape == (30, 40, 3)
        sim.close()
    finally:
        fc._reset_all()
    assert "did you mean 'pitch_down_deg'" in env_error({"carla": {"camera": {"pitch_deg": -10}}})


def test_readme_defaults_tables_are_the_models():
    """Every generated table in the README is what the models say now (keys, defaults, units): no drift."""
    from control.tools.config_tables import README, readme_tables, tables_in_readme

    in_readme = tables_in_readme(README.read_text(encoding="utf-8"))
    assert in_readme == readme_tables(), "README tables are stale: paste `python -m control.tools.config_tables`"
