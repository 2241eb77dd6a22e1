"""Config migration: the original CARLA racing toolkit's and an older RLlib's files become loadable configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from control.errors import ConfigError
from control.training.config_loader import load_config_file, load_ppo_config, resolve_config
from control.training.migrate import main as migrate_main

DATA = Path(__file__).resolve().parent / "data"
ORIGINAL = DATA / "original_toolkit_config.yaml"
NESTED = ("carla", "sensor", "action", "augmentations")  # env_config sections whose every key is reported


def _old_key_paths(raw: dict) -> list[str]:
    """Every key of the old file as the report names it: top level, model.*, env_config.* and its sections' keys."""
    paths = [k for k in raw if k not in ("model", "env_config", "env")]
    paths += [f"model.{k}" for k in raw.get("model", {})]
    for key, value in raw["env_config"].items():
        if key in NESTED:
            paths += [f"env_config.{key}.{k}" for k in value]
        else:
            paths.append(f"env_config.{key}")
    return paths


def _report(text: str) -> tuple[list[str], list[str]]:
    """(mapped, dropped) lines of the comment report heading a migrated file."""
    head = text.split("\n\n", 1)[0].splitlines()
    at = head.index("# dropped (and why):")
    return [ln[4:] for ln in head[:at] if ln.startswith("#   ")], [ln[4:] for ln in head[at:] if ln.startswith("#   ")]


def test_the_loader_names_every_unknown_key_of_an_old_file_in_one_message():
    with pytest.raises(ConfigError) as caught:
        load_ppo_config(ORIGINAL)
    message = str(caught.value)
    assert "\n" not in message
    for key in ("'horizon'", "'env_config.sensor'", "'env_config.reward_name'", "'env_config.augmentations'",
                "'env_config.max_time_episode'", "'env_config.spawn_mode'", "'env_config.carla.timeout'",
                "'env_config.carla.retries_on_error'", "'env_config.action.discrete'", "'carla-racer-minmax'"):
        assert key in message, key
    assert f"python -m control.training.migrate {ORIGINAL}" in message


def test_one_unknown_key_keeps_its_suggestion_and_points_to_migrate():
    with pytest.raises(ConfigError, match=r"unknown key 'entropy_coef'.*did you mean 'entropy_coeff'.*migrate"):
        resolve_config({"env": "RacerVLidar-v0", "entropy_coef": 0.01})


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_the_original_toolkit_config_migrates_every_key_and_trains_one_tiny_iteration(ray_session, tmp_path, capsys):
    from control.training.cli import main as train_main

    new = tmp_path / "migrated.yaml"
    assert migrate_main([str(ORIGINAL), "-o", str(new)]) == 0
    text = new.read_text()
    mapped, dropped = _report(text)
    reported = [line.split(" -> ")[0].split(": ")[0] for line in mapped] + [line.split(": ")[0] for line in dropped]
    for path in _old_key_paths(load_config_file(ORIGINAL)):
        assert path in reported, f"{path} is neither mapped nor dropped in the report"
    assert any(line.startswith("env: carla-racer-minmax -> env: RacerVLidar-v0") for line in mapped)
    config = yaml.safe_load(text)
    assert config["num_env_runners"] == 0 and config["minibatch_size"] == 64 and config["lambda_"] == 0.95
    assert config["model_config"] == {"fcnet_hiddens": [32, 32], "fcnet_activation": "tanh", "head_fcnet_hiddens": [],
                                      "vf_share_layers": False}
    env = config["env_config"]
    assert env["simulator"] == "carla" and env["max_episode_steps"] == 60
    assert env["carla"]["timeout_s"] == 10.0 and env["carla"]["retries"] == {"max_restarts": 10}
    assert env["carla"]["map"].endswith("expedition_loop_bordered") and env["carla"]["vehicle_filter"] == "vehicle.tesla.model3"
    assert env["carla"]["weather"] == "WetNoon" and env["carla"]["traffic"] == {"enabled": True, "vehicles": 4}
    assert env["observation"]["angles_deg"] == [-86.0, -75.0, -60.0, -45.0, -30.0, -15.0, -6.0,
                                                6.0, 15.0, 30.0, 45.0, 60.0, 75.0, 86.0]
    # steer 0.3 of the CARLA car's lock, in degrees (the backend's VehicleLimits)
    from control.sim.registry import vehicle_limits

    lock = vehicle_limits({"simulator": "carla"}).max_steering_deg
    assert env["action"] == {"type": "continuous", "steering_deg": [-0.3 * lock, 0.3 * lock]}
    # No CARLA server here: the same file trains on the built-in simulator.
    results = tmp_path / "results"
    assert train_main([str(new), "-n", "migrated", "--results_dir", str(results), "--set", "env_config.simulator=builtin",
                       "--stop_iteration", "1", "-v", "0"]) == 0
    run_config = yaml.safe_load((results / "migrated" / "config.yaml").read_text())
    assert run_config["observation_filter"] == "MeanStdFilter"
    assert len(run_config["env_config"]["observation"]["angles_deg"]) == 14
    assert list((results / "migrated").glob("train_1/*/checkpoint_*"))


def test_an_older_rllib_config_migrates_to_current_names_that_load_without_notices(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({
        "env": "RacerVLidar-v0", "framework": "tf", "num_workers": 0, "sgd_minibatch_size": 32, "num_sgd_iter": 2,
        "lambda": 0.9, "learning_starts": 100, "train_batch_size": 64, "model": {"fcnet_hiddens": [16], "dim": 84,
                                                                               "post_fcnet_hiddens": [8]},
        "env_config": {"track": "oval"}}))
    new = tmp_path / "new.yaml"
    assert migrate_main([str(old), "-o", str(new)]) == 0
    text = new.read_text()
    mapped, dropped = _report(text)
    assert "num_workers -> num_env_runners (renamed)" in mapped and "model.post_fcnet_hiddens -> model_config.head_fcnet_hiddens" in mapped
    assert any(line.startswith("framework: tf:") for line in dropped)
    assert any(line.startswith("learning_starts: PPO is on-policy") for line in dropped)
    resolved = resolve_config(yaml.safe_load(text), where=str(new))
    assert resolved.notices == []  # only current names are left
    assert resolved.settings["minibatch_size"] == 32 and resolved.model_config == {"fcnet_hiddens": [16], "head_fcnet_hiddens": [8]}


def test_migrate_does_not_overwrite_and_errors_are_one_line(tmp_path, capsys):
    out = tmp_path / "new.yaml"
    out.write_text("keep me\n")
    assert migrate_main([str(ORIGINAL), "-o", str(out)]) == 2
    assert migrate_main([str(tmp_path / "missing.yaml"), "-o", str(tmp_path / "x.yaml")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "--force" in lines[0] and "does not exist" in lines[1]
    assert out.read_text() == "keep me\n"
