"""A full disk under --results_dir (a small tmpfs): a one-line error, and the previous checkpoint still restores."""
from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos.harness import (
    EXIT_BOUND_S,
    PYTHON,
    REPO,
    TINY,
    VLIDAR,
    TrainingProcess,
    env_vars,
    iterations,
    mount_tmpfs,
    newest_complete_checkpoint,
    restored_from,
    result_logs,
    rows_done,
    unmount,
)

pytestmark = [pytest.mark.chaos, pytest.mark.ray, pytest.mark.timeout(900)]
DISK_SIZE = "64m"


def fill(folder: Path) -> int:
    """Write a file until the file system says ENOSPC; returns the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(folder / "filler.bin", "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(chunk) == 1:
                    return written
                chunk = chunk[: len(chunk) // 2]  # fill the last bytes too


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A DISK_SIZE tmpfs, unmounted afterwards; skips with mount's reason where the machine refuses."""
    try:
        mounted = mount_tmpfs(tmp_path / "disk", DISK_SIZE)
    except OSError as exc:
        pytest.skip(f"cannot mount a {DISK_SIZE} tmpfs as --results_dir here: {exc}")
    yield mounted
    unmount(mounted)


def test_full_disk_is_a_one_line_error_and_the_previous_checkpoint_restores(tmp_path: Path, small_disk: Path,
                                                                            chaos_report):
    results = small_disk
    chaos_report.did(f"mounted a {DISK_SIZE} tmpfs at {results} as --results_dir")
    folder = results / "full"
    common = ["-n", "full", "--results_dir", str(results)]
    train = TrainingProcess([VLIDAR, *common, "--stop_iteration", "100000", "--checkpoint_frequency", "1", *TINY],
                            tmp_path / "train.log")
    try:
        def checkpointed() -> int | None:
            newest = newest_complete_checkpoint(folder) if rows_done(folder) >= 1 else None
            return newest[1] if newest is not None and newest[1] == rows_done(folder) else None

        kept_iteration = train.wait_for(checkpointed, "first complete checkpoint", timeout_s=600, poll_s=0.05)
        kept_path = newest_complete_checkpoint(folder)[0]
        filled = fill(results)
        chaos_report.did(f"filled the disk ({filled / 2**20:.1f} MiB) after the checkpoint of iteration {kept_iteration}")
        code = train.wait_exit(EXIT_BOUND_S * 3)
        output = train.output()
    finally:
        train.finish()
    assert code is not None, f"ppo_train.py still running {EXIT_BOUND_S * 3:.0f} s after the disk filled:\n{output[-3000:]}"
    # The error checks are collected, not raised at once, so the restore half still runs and reports.
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    problems = [text for failed, text in (
        (code != 2, f"exit {code} on a full disk (a user error is exit 2)"),
        (len(errors) != 1, f"expected one 'error:' line, got {errors}"),
        (errors and "space" not in errors[0].lower(), f"the error does not say the disk is full: {errors[:1]}"),
        ("Traceback" in output, "a traceback was printed"),
    ) if failed]
    if problems:
        chaos_report.saw(f"error surfacing wrong: {'; '.join(problems)}; last line: {(output.strip().splitlines() or [''])[-1][:200]}")
    else:
        chaos_report.checked(f"exit 2 with one line and no traceback: {errors[0]}")

    (results / "filler.bin").unlink()
    chaos_report.did("freed the disk, then ppo_train.py -n full --restore")
    newest = newest_complete_checkpoint(folder)
    assert newest is not None and newest[1] >= kept_iteration, "the checkpoint saved before the disk filled is gone"
    restore = subprocess.run([PYTHON, "ppo_train.py", *common, "--restore", "--stop_iteration", str(newest[1] + 1),
                              "-v", "0"], cwd=REPO, env=env_vars(), capture_output=True, text=True, timeout=600)
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-3000:]
    assert restored_from(restore.stdout) == newest[0]
    assert iterations(result_logs(folder)[-1]) == [newest[1] + 1]
    chaos_report.checked(f"--restore continued from {newest[0].name} (iteration {newest[1]}; saved before the "
                         f"disk filled: {newest[0] == kept_path}) to iteration {newest[1] + 1}")
    assert not problems, "; ".join(problems) + f"\n{output[-3000:]}"
