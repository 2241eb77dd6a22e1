"""Real RLlib/Tune training through ppo_train.py's entry point (in-process), with tiny batches."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from control.integration.callbacks.metrics import (
    LAP_PROGRESS_MAX,
    LAP_PROGRESS_MEAN,
    LAPS_COMPLETED,
    OFFTRACK_RATE,
    SPEED_MPS_MEAN,
)
from control.integration.callbacks.state_log import COLUMNS, SIM_TRACE_COLUMNS
from control.training.checkpoints import is_algorithm_checkpoint, list_checkpoints
from control.training.cli import main

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
CAMERA = str(REPO / "resources/configs/ppo_camera_config.yaml")
BATCH = 128
TINY = ["--set", f"train_batch_size={BATCH}", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1",  # one env per runner: step counts are exact
        "--set", "env_config.max_episode_steps=50", "-v", "0"]

pytestmark = pytest.mark.timeout(300)


def results(run_folder: Path, segment: str = "train_1") -> list[dict]:
    """Every iteration's Tune result of one Tune run in a run folder."""
    (path,) = (run_folder / segment).glob("*/result.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def state_log_rows(run_folder: Path) -> tuple[list[str], int]:
    """(header of the first file, data rows over all training files) of a run's state log."""
    files = sorted((run_folder / "state_log").glob("iter_*.csv"))
    assert files, "no state log written"
    header = None
    rows = 0
    for f in files:
        with open(f, newline="") as fh:
            reader = csv.reader(fh)
            file_header = next(reader)
            header = header or file_header
            assert file_header == header
            rows += sum(1 for _ in reader)
    return header, rows


@pytest.fixture(scope="module")
def vlidar_run(ray_session, tmp_path_factory):
    """A 2-iteration vlidar run with the state log (shared by the tests that inspect it)."""
    results_dir = tmp_path_factory.mktemp("results")
    rc = main([VLIDAR, "-n", "vl", "--results_dir", str(results_dir), "--stop_iteration", "2", "--state_log", *TINY])
    assert rc == 0
    return results_dir, results_dir / "vl"


def test_vlidar_config_trains_two_iterations_to_a_checkpoint(vlidar_run):
    _, folder = vlidar_run
    history = results(folder)
    assert [r["training_iteration"] for r in history] == [1, 2]
    assert history[-1]["num_env_steps_sampled_lifetime"] == 2 * BATCH
    assert any(is_algorithm_checkpoint(p) for p in list_checkpoints(folder))
    assert (folder / "config.yaml").is_file()
    assert "--stop_iteration 2" in (folder / "command.txt").read_text()


def test_racing_metrics_are_reported_every_iteration(vlidar_run):
    _, folder = vlidar_run
    for result in results(folder):
        runners = result["env_runners"]
        for key in (LAP_PROGRESS_MEAN, LAP_PROGRESS_MAX, OFFTRACK_RATE, SPEED_MPS_MEAN, LAPS_COMPLETED,
                    "episode_len_mean"):
            assert key in runners, key
        assert 0.0 <= runners[LAP_PROGRESS_MEAN] <= runners[LAP_PROGRESS_MAX] <= 100.0
        assert 0.0 <= runners[OFFTRACK_RATE] <= 1.0


def test_state_log_has_sim_trace_columns_and_one_row_per_env_step(vlidar_run):
    _, folder = vlidar_run
    header, rows = state_log_rows(folder)
    assert tuple(header[:len(SIM_TRACE_COLUMNS)]) == SIM_TRACE_COLUMNS
    assert tuple(header) == COLUMNS
    assert rows == results(folder)[-1]["num_env_steps_sampled_lifetime"]
    names = sorted(p.name for p in (folder / "state_log").glob("iter_*.csv"))
    assert names == ["iter_000001_runner_000.csv", "iter_000002_runner_000.csv"]


def test_restore_continues_iterations_and_timesteps(vlidar_run):
    results_dir, folder = vlidar_run
    rc = main(["-n", "vl", "--results_dir", str(results_dir), "--restore", "--stop_iteration", "3", "--state_log",
               "-v", "0"])
    assert rc == 0
    (result,) = results(folder, "train_2")
    assert result["training_iteration"] == 3
    assert result["num_env_steps_sampled_lifetime"] == 3 * BATCH
    _, rows = state_log_rows(folder)
    assert rows == 3 * BATCH  # the restored run writes iteration 3's file


def test_existing_run_folder_is_refused_without_overwrite(vlidar_run, capsys):
    results_dir, _ = vlidar_run
    rc = main([VLIDAR, "-n", "vl", "--results_dir", str(results_dir), "--stop_iteration", "1", *TINY])
    assert rc == 2
    assert "already exists" in capsys.readouterr().err


def test_bad_stop_duration_fails_before_making_a_run_folder(tmp_path, capsys):
    rc = main([VLIDAR, "-n", "bad", "--results_dir", str(tmp_path), "--stop_duration", "10 minutes"])
    assert rc == 2
    assert "bad duration '10 minutes'" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_camera_config_trains_two_iterations_to_a_checkpoint(ray_session, tmp_path):
    rc = main([CAMERA, "-n", "cam", "--results_dir", str(tmp_path), "--stop_iteration", "2", *TINY])
    assert rc == 0
    folder = tmp_path / "cam"
    assert [r["training_iteration"] for r in results(folder)] == [1, 2]
    assert any(is_algorithm_checkpoint(p) for p in list_checkpoints(folder))


def test_evaluation_runs_on_its_own_runner_with_metrics_under_evaluation(ray_session, tmp_path):
    rc = main([VLIDAR, "-n", "ev", "--results_dir", str(tmp_path), "--stop_iteration", "1", *TINY,
               "--set", "evaluation_interval=1", "--set", "evaluation_duration=1"])
    assert rc == 0
    (result,) = results(tmp_path / "ev")
    assert LAP_PROGRESS_MEAN in result["evaluation"]["env_runners"]
