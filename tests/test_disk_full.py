"""A full disk under the run folder is one line that says so, names what is kept and how to continue."""
from __future__ import annotations

import errno

from control.training.error_cause import DiskFullError, find_disk_full


def test_enospc_anywhere_in_the_cause_chain_is_a_disk_full_error(tmp_path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError("Tune: trial failed") from inner
    except RuntimeError as outer:
        found = find_disk_full(outer, tmp_path / "run")
    assert isinstance(found, DiskFullError)
    message = str(found)
    assert "no space left" in message and "\n" not in message
    assert "no complete checkpoint was saved" in message and "--restore" in message


def test_a_remote_traceback_text_saying_so_counts_too(tmp_path):
    error = RuntimeError("ray::PPO.train()\nTraceback ...\nOSError: [Errno 28] No space left on device: 'checkpoint_000003'")
    assert isinstance(find_disk_full(error, tmp_path), DiskFullError)


def test_another_failure_on_a_disk_with_room_is_not_called_a_full_disk(tmp_path):
    assert find_disk_full(ValueError("something else"), tmp_path / "run") is None


def test_library_tracebacks_become_one_console_line_and_are_kept_in_the_run_folder(tmp_path, capsys):
    import logging
    import sys

    from control.training.tune_run import OneLineLibraryErrors

    console = logging.StreamHandler(sys.stderr)
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(console)
    quiet = OneLineLibraryErrors(tmp_path)
    quiet.install()
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            logging.getLogger("ray.tune.execution.experiment_state").error("Saving experiment state failed: ", exc_info=True)
    finally:
        quiet.uninstall()
        ray_logger.removeHandler(console)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" in (tmp_path / OneLineLibraryErrors.LOG_FILENAME).read_text()
