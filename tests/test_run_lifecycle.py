"""Run lifecycle without training: the run lock, an unreachable --address, redacted run files, checkpoint choice, error causes."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from control.errors import CheckpointError, ConfigError, RewardFunctionError, UserError
from control.training import run_folder as rf
from control.training.checkpoints import RestoreCallback, latest_checkpoint, missing_parts, resolve_restore_path
from control.training.cli import main
from control.training.error_cause import find_user_error, parse_user_error
from control.training.run_lock import RunLock, RunLockedError

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
REWARD_MESSAGE = "reward function raised ValueError: boom at step 1 with params {'x': 1.0}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_checkpoint(folder: Path, iteration: int) -> Path:
    """The files RLlib 2.60's PPO writes for a checkpoint (layout copied from a real one), tiny contents."""
    files = ["class_and_ctor_args.pkl", "rllib_checkpoint.json"]
    for component in ("learner_group", "learner_group/learner", "learner_group/learner/rl_module",
                      "learner_group/learner/rl_module/default_policy", "env_runner",
                      "env_runner/env_to_module_connector"):
        files += [f"{component}/class_and_ctor_args.pkl", f"{component}/metadata.json"]
        state = "module_state.pkl" if component.endswith(("rl_module", "default_policy")) else "state.pkl"
        files.append(f"{component}/{state}")
    for name in files:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("{}")
    with open(folder / "algorithm_state.pkl", "wb") as f:
        pickle.dump({"training_iteration": iteration}, f)
    return folder


# ---- run lock ---------------------------------------------------------------------------------------------

def test_a_second_lock_on_a_run_names_the_holder(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(RunLockedError, match=f"being trained by pid {os.getpid()} on "):
            RunLock(tmp_path / "run").acquire()
    RunLock(tmp_path / "run").acquire().release()  # free again once released


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_notice(tmp_path, capsys):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "h", "started": "then"}))
    with RunLock(folder) as lock:
        assert lock.held
        assert json.loads((folder / ".lock").read_text())["pid"] == os.getpid()
    assert f"taking over {folder / '.lock'} from pid {int(dead.stdout)}" in capsys.readouterr().err


def test_training_a_run_that_is_training_is_refused_and_overwrite_deletes_nothing(tmp_path, capsys):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "config.yaml").write_text("env: x\n")
    with RunLock(folder):  # stands for a training that is running
        for extra in ([], ["--overwrite"], ["--restore"]):
            rc = main([VLIDAR, "-n", "busy", "--results_dir", str(tmp_path), "--stop_iteration", "1", *extra])
            assert rc == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert err[-1].startswith(f"error: run {folder} is being trained by pid {os.getpid()}"), err
    assert (folder / "config.yaml").read_text() == "env: x\n"


# ---- --address ------------------------------------------------------------------------------------------

def test_an_address_where_nothing_listens_is_one_line_naming_it_and_leaves_no_run(tmp_path, capsys):
    address = f"127.0.0.1:{free_port()}"
    rc = main([VLIDAR, "-n", "far", "--results_dir", str(tmp_path), "--address", address, "--stop_iteration", "1"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --address {address}: no Ray head answers at {address} ("), err
    assert not (tmp_path / "far").exists()


# ---- redacted run files ---------------------------------------------------------------------------------

def test_command_txt_and_config_yaml_hold_no_credentials(tmp_path):
    rf.append_command_line(tmp_path, ["CONFIG", "--mlflow_uri", "http://alice:s3cret@mlflow:5000", "--set",
                                      "env_config.api_token=tok123"])
    rf.write_config(tmp_path, {"lr": 0.1, "env_config": {"service_password": "hunter2", "url": "https://bob:pw@x/y"}})
    written = (tmp_path / "command.txt").read_text() + (tmp_path / "config.yaml").read_text()
    for secret in ("s3cret", "tok123", "hunter2", ":pw@"):
        assert secret not in written
    assert "http://alice:***@mlflow:5000" in written and "lr: 0.1" in written


def test_a_changed_config_keeps_the_earlier_one_beside_it(tmp_path):
    rf.write_config(tmp_path, {"lr": 0.1})
    rf.write_config(tmp_path, {"lr": 0.2})
    assert "lr: 0.2" in (tmp_path / "config.yaml").read_text()
    assert "lr: 0.1" in (tmp_path / "config.prev.yaml").read_text()


# ---- complete checkpoints -------------------------------------------------------------------------------

def test_latest_is_the_highest_iteration_among_complete_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    old = fake_checkpoint(run / "train_1/PPO_x/checkpoint_000001", iteration=20)
    newer = fake_checkpoint(run / "train_2/PPO_y/checkpoint_000000", iteration=30)  # Tune's index restarts
    newest = fake_checkpoint(run / "train_2/PPO_y/checkpoint_000001", iteration=40)
    os.utime(old / "algorithm_state.pkl", (4e9, 4e9))  # a copy with odd timestamps must not matter
    assert latest_checkpoint(run) == newest
    shutil.rmtree(newest / "learner_group")  # e.g. a second Ctrl-C during the save
    assert latest_checkpoint(run) == newer
    captured = capsys.readouterr()
    assert f"skipping incomplete checkpoint {newest}: missing learner_group/learner/rl_module" in captured.err  # a warning
    assert f"using {newer} (iteration 30)" in captured.out  # which one is used: information


def test_a_checkpoint_with_a_torn_file_is_incomplete(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "checkpoint_000000", iteration=1)
    assert missing_parts(ckpt) == []
    (ckpt / "env_runner/env_to_module_connector/state.pkl").write_bytes(b"")
    assert missing_parts(ckpt) == ["env_runner/env_to_module_connector/state.*"]


def test_restoring_a_checkpoint_without_learner_group_is_an_error_not_fresh_weights(tmp_path):
    ckpt = fake_checkpoint(tmp_path / "checkpoint_000003", iteration=3)
    shutil.rmtree(ckpt / "learner_group")
    with pytest.raises(CheckpointError, match="incomplete checkpoint, missing learner_group"):
        resolve_restore_path(str(ckpt), tmp_path)
    callback = type("Bound", (RestoreCallback,), {"checkpoint_path": str(ckpt)})()
    with pytest.raises(CheckpointError, match="incomplete checkpoint, missing learner_group"):
        callback.on_algorithm_init(algorithm=None)  # raises before touching the algorithm


# ---- the project's error behind Ray's wrappers -------------------------------------------------------

def test_user_errors_survive_pickling_as_ray_ships_them():
    for cls in (UserError, ConfigError, RewardFunctionError, CheckpointError, RunLockedError):
        copy = pickle.loads(pickle.dumps(cls("what is wrong")))
        assert type(copy) is cls and str(copy) == "what is wrong"


def test_the_project_error_is_found_under_rllib_and_ray_wrappers():
    try:
        try:
            raise RewardFunctionError(REWARD_MESSAGE)
        except RewardFunctionError as exc:
            raise RuntimeError from exc  # what RLlib's env runner does
    except RuntimeError as wrapped:
        found = find_user_error(wrapped)
    assert type(found) is RewardFunctionError and str(found) == REWARD_MESSAGE


def test_the_project_error_is_parsed_from_a_remote_traceback_text():
    remote = ("\x1b[36mray::PPO.train()\x1b[39m (pid=1, ip=10.0.0.2)\n  File \"x.py\", line 1, in f\n"
              "ValueError: boom\n\nThe above exception was the direct cause of the following exception:\n\n"
              f"control.errors.RewardFunctionError: {REWARD_MESSAGE}\n\nRuntimeError\n")
    found = find_user_error(RuntimeError(remote))
    assert type(found) is RewardFunctionError and str(found) == REWARD_MESSAGE
    assert parse_user_error("RuntimeError: nothing of ours\n") is None
