"""The state log survives a SIGKILL row for row, stays under its size cap, and `make analyze` skips a torn last row."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from control.integration.callbacks.state_log import COLUMNS, SIM_TRACE_COLUMNS, state_log_row
from control.integration.state_log_writer import StateLogWriter, log_file_iteration, max_mb_arg
from control.rollout import analyze

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_EPISODE = 37  # not a divisor of the report interval: kills land mid-episode


def info(step: int) -> dict:
    """A step's info dict as RacingEnv returns it (the fields the state log reads)."""
    return {
        "params": {"steps": step, "x": 0.1 * step, "y": -0.2 * step, "heading": 12.5, "all_wheels_on_track": True,
                   "progress": step / 10.0, "closest_waypoints": [3, 4], "track_length": 17.7, "speed": 1.5,
                   "distance_from_center": 0.05, "is_left_of_center": False, "is_offtrack": False,
                   "is_crashed": False, "is_reversed": False},
        "steering_deg": -7.5, "speed_cmd_mps": 2.0, "action_index": 3, "sim_time_s": step / 15.0,
        "episode_status": "in_progress", "reward_components": {"center": 0.5, "speed": 0.25},
    }  # fmt: skip


def row(n: int, iteration: int = 1) -> list:
    """Row number n of a synthetic run: episodes of ROWS_PER_EPISODE steps; `steps` holds the global row number."""
    episode, step = divmod(n, ROWS_PER_EPISODE)
    out = state_log_row(info(n), episode=episode, reward=1.0, done=step == ROWS_PER_EPISODE - 1, iteration=iteration,
                        worker_index=0, env_index=0, episode_id=f"ep{episode}")
    return out


WRITER_SCRIPT = textwrap.dedent("""
    import sys
    from tests.test_state_log_durability import ROWS_PER_EPISODE, row
    from control.integration.callbacks.state_log import COLUMNS
    from control.integration.state_log_writer import StateLogWriter

    writer = StateLogWriter(sys.argv[1], COLUMNS, max_bytes=0)
    writer.open("iter_000001_runner_000", 1)
    n = 0
    while True:
        writer.write_row(row(n))
        n += 1
        if n % ROWS_PER_EPISODE == 0:
            writer.end_of_episode()
        if n % 100 == 0:
            print(n, flush=True)  # n rows have been written
""")


def test_sigkill_of_the_writing_process_keeps_every_complete_row(tmp_path):
    log_dir = tmp_path / "state_log"
    proc = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(log_dir)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        reported = 0
        while reported < 3000:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.wait()}"
            reported = int(line)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    data = analyze.read_state_log(log_dir)
    # Every row written before the last report is there, once, in order, complete.
    rows = data["steps"].to_numpy()
    assert len(rows) >= reported
    assert (rows == range(len(rows))).all()
    assert not data[list(SIM_TRACE_COLUMNS)].isna().any().any()


def test_make_analyze_skips_a_torn_last_row_with_a_notice(tmp_path, capsys):
    run = tmp_path / "results" / "run1"
    writer = StateLogWriter(run / "state_log", COLUMNS)
    writer.open("iter_000001_runner_000", 1)
    for n in range(3 * ROWS_PER_EPISODE + 5):
        writer.write_row(row(n))
    writer.close()
    path = run / "state_log" / "iter_000001_runner_000.csv"
    with open(path, "a") as fh:  # a kill in the middle of a row: cut inside the quoted reward_components
        fh.write('3,5,0.5,0.25,12.5,-7.5,2.0,3,1.0,False,True,0.5,4,17.7,0.3,in_progress,1,0,0,ep3,1.5,0.05,'
                 'False,False,False,False,"{""center"": 0.')

    assert analyze.main(["-n", "run1", "--results_dir", str(tmp_path / "results")]) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "torn last row" in line]
    assert len(notices) == 1 and str(path) in notices[0]
    episodes = pd.read_csv(run / "analysis" / "episodes.csv")
    assert len(episodes) == 3  # the three finished episodes; the torn row's episode is still running


def test_writer_reopening_a_file_with_a_torn_tail_appends_whole_rows(tmp_path):
    writer = StateLogWriter(tmp_path, COLUMNS)
    writer.open("iter_000002_runner_001", 2)
    for n in range(10):
        writer.write_row(row(n, iteration=2))
    writer.close()
    path = tmp_path / "iter_000002_runner_001.csv"
    with open(path, "a") as fh:
        fh.write("0,10,1.0,2.")  # the env runner died mid-row and is restarted on the same iteration

    writer = StateLogWriter(tmp_path, COLUMNS)
    writer.open("iter_000002_runner_001", 2)
    for n in range(10, 20):
        writer.write_row(row(n, iteration=2))
    writer.close()
    data = pd.read_csv(path)
    assert list(data.columns) == list(COLUMNS)
    assert data["steps"].tolist() == list(range(20))


def test_folder_stays_under_the_cap_rotating_parts_and_deleting_the_oldest_iterations(tmp_path):
    cap = 256 * 1024
    writer = StateLogWriter(tmp_path, COLUMNS, max_bytes=cap)
    assert writer.part_bytes == 64 * 1024
    n = 0
    for iteration in range(1, 21):
        writer.open(f"iter_{iteration:06d}_runner_000", iteration)
        for _ in range(20 * ROWS_PER_EPISODE):  # ~230 KB per iteration: several parts each
            writer.write_row(row(n, iteration))
            n += 1
            if n % ROWS_PER_EPISODE == 0:
                writer.end_of_episode()
    writer.close()

    files = sorted(tmp_path.glob("*.csv"))
    total = sum(p.stat().st_size for p in files)
    assert total <= cap + writer.part_bytes + 2 * 1024  # the cap, plus the part being written and its last episode
    kept = sorted(log_file_iteration(p) for p in files)
    assert kept[-1][0] == 20 and kept[0][0] > 1  # the newest iteration is kept, the oldest went first
    assert any(part > 0 for _, part in kept), "no file was rotated into parts"
    data = analyze.read_state_log(tmp_path)
    steps = data["steps"].to_numpy()
    assert steps[-1] == n - 1 and (steps[1:] - steps[:-1] == 1).all()  # what is kept is the newest rows, gap-free
    assert writer.deleted_files > 0


def test_no_cap_keeps_everything(tmp_path):
    writer = StateLogWriter(tmp_path, COLUMNS, max_bytes=0)
    for iteration in range(1, 4):
        writer.open(f"iter_{iteration:06d}_runner_000", iteration)
        for n in range(50):
            writer.write_row(row(n, iteration))
    writer.close()
    assert len(analyze.read_state_log(tmp_path)) == 150


@pytest.mark.parametrize("text", ["-1", "lots", "nan"])
def test_size_cap_flag_rejects_what_is_not_megabytes(text):
    with pytest.raises(argparse.ArgumentTypeError, match="megabytes"):
        max_mb_arg(text)
    assert max_mb_arg("0") == 0.0 and max_mb_arg("512") == 512.0


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_state_log_max_mb_flag_caps_a_real_training_run(ray_session, tmp_path):
    from control.training.cli import main

    config = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
    tiny = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
            "--set", "num_envs_per_env_runner=1", "--set", "env_config.max_episode_steps=50", "-v", "0"]
    # ~40 KB of rows per iteration; a 0.07 MB cap leaves room for the file being written only.
    assert main([config, "-n", "capped", "--results_dir", str(tmp_path), "--stop_iteration", "2", "--state_log",
                 "--state_log_max_mb", "0.07", *tiny]) == 0
    names = sorted(p.name for p in (tmp_path / "capped" / "state_log").glob("*.csv"))
    assert names == ["iter_000002_runner_000.csv"]  # iteration 1 went when iteration 2 began
    assert len(analyze.read_state_log(tmp_path / "capped" / "state_log")) == 128
