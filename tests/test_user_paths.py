"""User file paths (reward .py, track .npy, CARLA files) work from any launch directory.

Tune runs the trial in another working directory, so every relative path is resolved once,
against the directory the command was started in, and the run's config.yaml holds absolute paths.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from control.errors import ConfigError, TrackFileError
from control.training.config_loader import apply_overrides, load_config_file, resolve_config

REPO = Path(__file__).resolve().parents[1]
VLIDAR = REPO / "resources" / "configs" / "ppo_vlidar_config.yaml"
OVAL = REPO / "resources" / "tracks" / "oval.npy"
REWARD = "def reward_function(params):\n    return 1.0 if params['all_wheels_on_track'] else 1e-3\n"
TINY = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1", "--set", "env_config.max_episode_steps=50", "-v", "0"]


@pytest.fixture
def launch_dir(tmp_path, monkeypatch):
    """A launch directory (the cwd) holding my_rewards/r.py and tracks/mine.npy, as a user's project would."""
    (tmp_path / "my_rewards").mkdir()
    (tmp_path / "my_rewards" / "r.py").write_text(REWARD)
    (tmp_path / "tracks").mkdir()
    shutil.copy(OVAL, tmp_path / "tracks" / "mine.npy")
    monkeypatch.chdir(tmp_path)
    return tmp_path.resolve()  # as os.getcwd() names it


def test_relative_reward_and_track_become_absolute_against_the_launch_directory(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.reward=my_rewards/r.py",
                                                     "env_config.track=tracks/mine.npy"])
    env_config = resolve_config(raw).env_config
    assert env_config["reward"] == str(launch_dir / "my_rewards" / "r.py")
    assert env_config["track"] == str(launch_dir / "tracks" / "mine.npy")


def test_tracks_in_a_list_are_resolved_and_bundled_names_kept(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.track=[oval, tracks/mine.npy]"])
    assert resolve_config(raw).env_config["track"] == ["oval", str(launch_dir / "tracks" / "mine.npy")]


def test_builtin_reward_name_is_not_a_path(launch_dir):
    assert resolve_config(load_config_file(VLIDAR)).env_config["reward"] == "center_line_speed"


def test_paths_in_a_config_file_are_taken_from_the_launch_directory_not_the_file_folder(launch_dir):
    raw = load_config_file(VLIDAR)
    raw["env_config"]["reward"] = "my_rewards/r.py"  # exists under the launch dir, not under configs/
    folder = launch_dir / "configs"
    folder.mkdir()
    (folder / "mine.yaml").write_text(yaml.safe_dump(raw))
    resolved = resolve_config(load_config_file("configs/mine.yaml"), where="configs/mine.yaml")
    assert resolved.env_config["reward"] == str(launch_dir / "my_rewards" / "r.py")


def test_carla_file_paths_become_absolute(launch_dir):
    (launch_dir / "maps").mkdir()
    (launch_dir / "maps" / "ring.xodr").write_text("<OpenDRIVE/>")
    raw = apply_overrides(load_config_file(VLIDAR), [
        "env_config.carla.track_file=tracks/mine.npy", "env_config.carla.map=maps/ring.xodr",
        "env_config.carla.save_track=out/route.npy"])
    carla = resolve_config(raw).env_config["carla"]
    assert carla["track_file"] == str(launch_dir / "tracks" / "mine.npy")
    assert carla["map"] == str(launch_dir / "maps" / "ring.xodr")
    assert carla["save_track"] == str(launch_dir / "out" / "route.npy")


def test_carla_town_name_is_not_a_path(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.carla.map=Town04"])
    assert resolve_config(raw).env_config["carla"]["map"] == "Town04"


def test_home_directory_is_expanded(launch_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(launch_dir))
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.reward=~/my_rewards/r.py"])
    assert resolve_config(raw).env_config["reward"] == str(launch_dir / "my_rewards" / "r.py")


def test_evaluation_env_config_paths_are_resolved_too(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), [
        "evaluation_interval=1", "evaluation_config={env_config: {track: tracks/mine.npy}}"])
    eval_env = resolve_config(raw).settings["evaluation_config"]["env_config"]
    assert eval_env["track"] == str(launch_dir / "tracks" / "mine.npy")


def test_missing_relative_reward_file_is_a_one_line_error_naming_where_it_was_looked_for(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.reward=my_rewards/missing.py"])
    with pytest.raises(ConfigError) as err:
        resolve_config(raw)
    message = str(err.value)
    assert "\n" not in message and str(launch_dir / "my_rewards" / "missing.py") in message


def test_missing_relative_track_file_is_a_one_line_error(launch_dir):
    raw = apply_overrides(load_config_file(VLIDAR), ["env_config.track=tracks/missing.npy"])
    with pytest.raises(TrackFileError) as err:
        resolve_config(raw)
    assert "\n" not in str(err.value) and str(launch_dir / "tracks" / "missing.npy") in str(err.value)


@pytest.mark.ray
@pytest.mark.timeout(400)
def test_ppo_train_from_another_directory_trains_with_relative_reward_and_track(tmp_path):
    launch = tmp_path.resolve() / "project"
    (launch / "my_rewards").mkdir(parents=True)
    (launch / "my_rewards" / "r.py").write_text(REWARD)
    (launch / "tracks").mkdir()
    shutil.copy(OVAL, launch / "tracks" / "mine.npy")
    (launch / "configs").mkdir()
    raw = load_config_file(VLIDAR)
    raw["env_config"]["reward"] = "my_rewards/r.py"  # a relative path inside the config file
    (launch / "configs" / "rel.yaml").write_text(yaml.safe_dump(raw))
    run = subprocess.run(
        [sys.executable, str(REPO / "ppo_train.py"), "configs/rel.yaml", "-n", "rel", "--results_dir", "results",
         "--set", "env_config.track=tracks/mine.npy",  # and a relative path on the command line
         "--stop_iteration", "1", *TINY],
        cwd=launch, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=360)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    folder = launch / "results" / "rel"
    (result_file,) = folder.glob("train_1/*/result.json")
    assert json.loads(result_file.read_text().splitlines()[-1])["training_iteration"] == 1
    recorded = yaml.safe_load((folder / "config.yaml").read_text())["env_config"]
    assert recorded["reward"] == str(launch / "my_rewards" / "r.py")
    assert recorded["track"] == str(launch / "tracks" / "mine.npy")
