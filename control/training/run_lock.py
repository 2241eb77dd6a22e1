"""One training at a time per run folder: an flock on results/<NAME>/.lock held while it trains.

The kernel drops an flock when its holder dies (even on SIGKILL), so a lock file left by a dead
process is free to take; the pid/host/start time written in it only serves to name the holder
in the error a second start gets, and the dead holder in the notice of a take-over.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import IO, Any

from control.errors import UserError

LOCK_FILENAME = ".lock"


class RunLockedError(UserError):
    """The run is being trained by another process."""


class RunLock:
    """An exclusive, non-blocking lock on one run folder, released by release() or process exit."""

    def __init__(self, run_folder: Path):
        self.run_folder = Path(run_folder)
        self.path = self.run_folder / LOCK_FILENAME
        self._file: IO[str] | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise RunLockedError naming its holder; a dead holder's lock is taken over."""
        self.run_folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(read_holder(self.path))
            handle.close()
            raise RunLockedError(f"run {self.run_folder} is being trained by {holder}: wait for it to end, "
                                 "stop it (Ctrl-C), or pick another --name") from None
        previous = read_holder(self.path)
        if previous:
            print(f"run lock: taking over {self.path} from {_describe(previous)}, which no longer holds it",
                  file=sys.stderr)
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "command": " ".join(sys.argv[:1])}, handle)
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        """Let go of the lock and clear the holder record (the file itself stays: others may have it open)."""
        if self._file is None:
            return
        try:
            if self.path.exists():
                self._file.seek(0)
                self._file.truncate()
                self._file.flush()
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
        finally:
            self._file.close()
            self._file = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._file is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, Any]:
    """The holder record of a lock file ({} when empty, missing or unreadable)."""
    try:
        text = Path(path).read_text().strip()
        return json.loads(text) if text else {}
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    """'pid 1234 on host-a (since 2025-01-01 12:00:00)' or 'another process' when unknown."""
    if not holder.get("pid"):
        return "another process"
    return f"pid {holder['pid']} on {holder.get('host', '?')} (since {holder.get('started', '?')})"
