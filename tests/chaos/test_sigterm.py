"""SIGTERM to ppo_train.py's whole process group (systemd, Slurm, Kubernetes, `timeout`) at three moments:
exit 0 within a bounded time, with a restorable checkpoint or no run folder left behind."""
from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from control.training.checkpoints import latest_checkpoint
from tests.chaos.harness import (
    EXIT_BOUND_S,
    TINY,
    VLIDAR,
    TrainingProcess,
    checkpoints,
    files_being_written,
    incomplete_checkpoints,
    load_policy,
    newest_complete_checkpoint,
    result_logs,
    rows_done,
    wait_group_gone,
)

pytestmark = [pytest.mark.chaos, pytest.mark.ray, pytest.mark.timeout(600)]


def start(tmp_path: Path, name: str, *extra: str) -> tuple[TrainingProcess, Path]:
    """ppo_train.py on the tiny vlidar config, checkpointing every iteration, running until signalled."""
    results = tmp_path / "results"
    train = TrainingProcess([VLIDAR, "-n", name, "--results_dir", str(results), "--stop_iteration", "100000",
                             "--checkpoint_frequency", "1", *TINY, *extra], tmp_path / f"{name}.log")
    return train, results / name


def send_sigterm(train: TrainingProcess, chaos_report, moment: str) -> None:
    """SIGTERM to the whole process group, as a service manager sends it."""
    train.signal_group(signal.SIGTERM)
    chaos_report.did(f"SIGTERM to process group {train.pid} {moment}")


def wait_clean_exit(train: TrainingProcess, chaos_report) -> str:
    """Wait (bounded) for the driver after the signal; assert exit 0; returns its output."""
    code = train.wait_exit(EXIT_BOUND_S)
    output = train.output()
    assert code is not None, f"ppo_train.py still running {EXIT_BOUND_S:.0f} s after SIGTERM:\n{output[-3000:]}"
    assert code == 0, f"exit {code} after SIGTERM:\n{output[-3000:]}"
    chaos_report.checked(f"driver exited 0 within {EXIT_BOUND_S:.0f} s")
    leftover = wait_group_gone(train.pid)
    chaos_report.saw(f"{len(leftover)} processes of the group alive 30 s after the driver exited")
    return output


def assert_restorable(folder: Path, chaos_report) -> tuple[Path, int]:
    """The newest complete checkpoint exists, is the one --restore picks, and its policy loads."""
    newest = newest_complete_checkpoint(folder)
    assert newest is not None, f"no complete checkpoint under {folder}: {checkpoints(folder)}"
    path, iteration = newest
    assert latest_checkpoint(folder) == path, "--restore would not pick the newest complete checkpoint"
    load_policy(path)
    chaos_report.checked(f"newest complete checkpoint {path.name} (iteration {iteration}) is the one --restore "
                         "picks, and its policy loads")
    return newest


@pytest.mark.chaos_quick
def test_sigterm_during_an_iteration_ends_with_a_checkpoint_of_the_last_iteration(tmp_path: Path, chaos_report):
    train, folder = start(tmp_path, "term_iter")
    try:
        train.wait_for(lambda: rows_done(folder) >= 1, "first iteration", timeout_s=400)
        time.sleep(0.3 * float(result_logs(folder)[0].rows[-1]["time_this_iter_s"]))
        send_sigterm(train, chaos_report, f"during iteration {rows_done(folder) + 1}")
        output = wait_clean_exit(train, chaos_report)
    finally:
        train.finish()
    assert "SIGTERM received" in output
    _, iteration = assert_restorable(folder, chaos_report)
    reported = result_logs(folder)[0].rows[-1]["training_iteration"]
    assert iteration == reported, f"checkpoint holds iteration {iteration}, the run reported {reported}"
    chaos_report.checked(f"the checkpoint holds the last reported iteration ({reported})")


def test_sigterm_during_start_up_leaves_a_checkpoint_or_no_run_folder(tmp_path: Path, chaos_report):
    train, folder = start(tmp_path, "term_start")
    try:
        # The run folder exists before Ray starts: the signal lands while Ray and the trial start.
        train.wait_for(folder.is_dir, "run folder", timeout_s=120, poll_s=0.02)
        send_sigterm(train, chaos_report, "during start-up (run folder made, Ray starting)")
        wait_clean_exit(train, chaos_report)
    finally:
        train.finish()
    if folder.exists():
        assert_restorable(folder, chaos_report)
    else:
        chaos_report.checked(f"no run folder left behind: the name '{folder.name}' is free again")


def test_sigterm_during_a_checkpoint_save_leaves_a_restorable_checkpoint(tmp_path: Path, chaos_report):
    # A big network makes each checkpoint tens of MB, so its save takes long enough to be hit.
    train, folder = start(tmp_path, "term_save", "--set", "model.fcnet_hiddens=[1024,1024]")
    try:
        train.wait_for(lambda: rows_done(folder) >= 1, "first iteration", timeout_s=400)
        # The trial actor writes the checkpoint into a temp folder, then Tune copies it into the run:
        # signal as soon as a process of the group holds a checkpoint file open, or a new folder appears.
        before = set(checkpoints(folder))

        def saving() -> list[str]:
            return files_being_written(train.pid) or [str(c) for c in sorted(set(checkpoints(folder)) - before)]

        open_files = train.wait_for(saving, "a checkpoint save", timeout_s=400, poll_s=0.005)
        send_sigterm(train, chaos_report, f"as the save of {Path(open_files[0]).name} was seen ({open_files[0]})")
        in_progress = bool(files_being_written(train.pid)) or bool(incomplete_checkpoints(folder))
        chaos_report.saw(f"just after the signal the save was {'still in progress' if in_progress else 'already done'}")
        wait_clean_exit(train, chaos_report)
    finally:
        train.finish()
    _, iteration = assert_restorable(folder, chaos_report)
    reported = result_logs(folder)[0].rows[-1]["training_iteration"]
    chaos_report.saw(f"checkpoint iteration {iteration}, last reported iteration {reported}; "
                     f"{len(incomplete_checkpoints(folder))} incomplete checkpoint folder(s) left")
