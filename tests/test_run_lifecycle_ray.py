"""Run lifecycle with real Ray/RLlib training: the reward's own error as the one line, config.yaml only after a working restore."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from control.training.cli import main

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
TINY = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1", "--set", "env_config.max_episode_steps=50", "-v", "0"]
RAISING_REWARD = '''
def reward_function(params):
    if params["steps"] >= 1:
        raise ValueError("boom from the reward")
    return 1.0
'''

pytestmark = [pytest.mark.ray, pytest.mark.timeout(400)]


@pytest.mark.parametrize("num_env_runners", [0, 1], ids=["local_runner", "env_runner_process"])
def test_a_raising_reward_ends_training_with_its_own_one_line_error(ray_session, tmp_path, capsys, num_env_runners):
    reward = tmp_path / "bad_reward.py"
    reward.write_text(RAISING_REWARD)
    rc = main([VLIDAR, "-n", "bad", "--results_dir", str(tmp_path / "results"), "--stop_iteration", "2", *TINY,
               "--set", f"env_config.reward={reward}", "--num_env_runners", str(num_env_runners)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert re.fullmatch(r"error: reward function raised ValueError: boom from the reward at step 1 with params \{.*"
                        r"'steps': 1, .*\}", err[-1]), err[-1]
    assert not (tmp_path / "results" / "bad").exists()  # nothing trained: the NAME stays free


@pytest.fixture(scope="module")
def two_iteration_run(ray_session, tmp_path_factory):
    """A 2-iteration vlidar run with a checkpoint."""
    results_dir = tmp_path_factory.mktemp("results")
    assert main([VLIDAR, "-n", "r", "--results_dir", str(results_dir), "--stop_iteration", "2", *TINY]) == 0
    return results_dir, results_dir / "r"


def test_a_restore_that_cannot_load_its_checkpoint_leaves_config_yaml_as_it_was(two_iteration_run, capsys):
    results_dir, folder = two_iteration_run
    before = (folder / "config.yaml").read_text()
    # A different network cannot take the checkpoint's weights: the restore fails while building.
    rc = main([VLIDAR, "-n", "r", "--results_dir", str(results_dir), "--restore", "--stop_iteration", "3", *TINY,
               "--set", "model.fcnet_hiddens=[16]"])
    assert rc == 2, capsys.readouterr().err
    assert (folder / "config.yaml").read_text() == before
    assert sorted(p.name for p in folder.glob("train_*")) == ["train_1"]  # the failed start left no train_2/


def test_a_restore_that_trains_writes_its_config_and_keeps_the_earlier_one(two_iteration_run, capsys):
    results_dir, folder = two_iteration_run
    before = (folder / "config.yaml").read_text()
    rc = main([VLIDAR, "-n", "r", "--results_dir", str(results_dir), "--restore", "--stop_iteration", "3", *TINY,
               "--set", "lr=0.000123"])
    assert rc == 0, capsys.readouterr().err
    assert "lr: 0.000123" in (folder / "config.yaml").read_text()
    assert (folder / "config.prev.yaml").read_text() == before
    assert "(iteration 2), the newest complete one" in capsys.readouterr().out  # says which checkpoint it used
