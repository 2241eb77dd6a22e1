"""Append-only CSV files of the state log: whole rows, rotated by size, the folder kept under a size cap.

Why plain CSV rotated into numbered files rather than gzip: a gzip member cut by a hard kill makes
pandas raise on the whole file (`Compressed file ended before the end-of-stream marker`), and
DeepRacer log-analysis notebooks read plain CSV; a torn plain-CSV row costs only that row.

- Each row reaches the operating system in one write() as soon as it is written (line-buffered),
  so a SIGKILL of the writing process keeps every complete row; a torn tail (a full disk, a power
  cut) is cut back to the last whole row when the file is opened again.
- A file that grows past `part_bytes` is closed at the next episode end and the rows go on in
  `<name>_part_001.csv`, `_part_002.csv`, ...
- Before a new file is opened, the oldest files of earlier iterations (and this writer's own
  closed parts) are deleted while the folder holds more than `max_bytes` (0: no cap).
"""
from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from control.errors import ConfigError

logger = logging.getLogger(__name__)

# 2-4 GB per hour at full training speed (issue 10): 1 GiB keeps the last 15-30 minutes, plenty
# for DeepRacer-style analysis of recent iterations, and no run fills a disk by accident.
DEFAULT_MAX_MB = 1024.0
MIN_PART_BYTES = 64 * 1024
MAX_PART_BYTES = 64 * 1024 * 1024
# iter_000012_runner_003.csv, eval_iter_000012_runner_003_part_002.csv
_NAME_RE = re.compile(r"^(?:eval_)?iter_(?P<iteration>\d+)_runner_\d+(?:_part_(?P<part>\d+))?\.csv$")


def max_mb_arg(text: str) -> float:
    """argparse type of --state_log_max_mb: a number of megabytes >= 0 (0 = no cap)."""
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of megabytes (e.g. 1024, or 0 for no cap)") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: expected megabytes >= 0 (e.g. 1024, or 0 for no cap)")
    return value


def cap_bytes(max_mb: float) -> int:
    """The folder cap in bytes for `max_mb` megabytes (0 = no cap); a negative value is a ConfigError."""
    if not max_mb >= 0:
        raise ConfigError(f"state log size cap {max_mb} MB: expected megabytes >= 0 (0 = no cap)")
    return int(max_mb * 1024 * 1024)


def part_bytes_for(max_bytes: int) -> int:
    """Size at which a file is rotated: 1/16 of the cap, between 64 KiB and 64 MiB."""
    if max_bytes <= 0:
        return MAX_PART_BYTES
    return max(MIN_PART_BYTES, min(MAX_PART_BYTES, max_bytes // 16))


def log_file_iteration(path: Path) -> tuple[int, int] | None:
    """(iteration, part) of a state log file name, None for any other file."""
    match = _NAME_RE.match(path.name)
    if match is None:
        return None
    return int(match.group("iteration")), int(match.group("part") or 0)


def cut_torn_tail(path: Path) -> int:
    """Truncate `path` after its last newline (a row torn by a kill); returns the bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        fh.seek(-1, os.SEEK_END)
        if fh.read(1) == b"\n":
            return 0
        # Walk back in blocks to the last newline; rows are a few hundred bytes.
        end = size
        keep = 0
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start)
            index = block.rfind(b"\n")
            if index >= 0:
                keep = start + index + 1
                break
            end = start
        fh.truncate(keep)
    return size - keep


class StateLogWriter:
    """Writes rows to `<base>.csv` (then `_part_NNN.csv`) under `log_dir`, with the header first."""

    def __init__(self, log_dir: str | Path, columns: Sequence[str], max_bytes: int = cap_bytes(DEFAULT_MAX_MB)) -> None:
        self.log_dir = Path(log_dir)
        self.columns = tuple(columns)
        self.max_bytes = int(max_bytes)
        self.part_bytes = part_bytes_for(self.max_bytes)
        self._file: IO[str] | None = None
        self._writer: Any = None
        self._base: str | None = None
        self._iteration = 0
        self._part = 0
        self._bytes = 0
        self._closed_parts: list[Path] = []  # this writer's finished parts of the current base
        self._warned_cap = False
        self.deleted_files = 0

    @property
    def path(self) -> Path | None:
        """The file rows go to now (None before the first row)."""
        return self._file_path(self._base, self._part) if self._base is not None else None

    def open(self, base: str, iteration: int) -> None:
        """Send the next rows to `<base>.csv` (iteration: the training iteration the rows belong to)."""
        if base == self._base and self._file is not None:
            return
        self.close()
        self._base, self._iteration, self._part = base, int(iteration), 0
        self._closed_parts = []
        # A writer restarted on the same iteration (a restarted env runner) continues its last part.
        while self._file_path(base, self._part + 1).exists():
            self._part += 1
        self._open_part()

    def write_row(self, row: Sequence[Any]) -> None:
        """Append one row (one write() to the OS: a kill after this returns keeps it)."""
        if self._writer is None:
            raise RuntimeError("StateLogWriter.write_row before open()")
        self._bytes += self._writer.writerow(row)

    def end_of_episode(self) -> None:
        """A row boundary between episodes: rotate to the next part when this one is full."""
        if self._file is not None and self._bytes >= self.part_bytes:
            self._file.close()
            self._closed_parts.append(self._file_path(self._base, self._part))
            self._part += 1
            self._open_part()

    def close(self) -> None:
        """Close the current file (rows are already with the OS)."""
        if self._file is not None:
            self._file.close()
        self._file, self._writer = None, None

    # ----------------------------------------------------------------------------------------
    def _file_path(self, base: str | None, part: int) -> Path:
        suffix = f"_part_{part:03d}" if part else ""
        return self.log_dir / f"{base}{suffix}.csv"

    def _open_part(self) -> None:
        path = self._file_path(self._base, self._part)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._enforce_cap()
        removed = cut_torn_tail(path) if path.exists() else 0
        if removed:
            logger.warning("state log %s: cut a torn last row (%d bytes) before appending", path, removed)
        is_new = not path.exists() or path.stat().st_size == 0
        # buffering=1: line-buffered, so every row is handed to the OS by the write that ends it.
        self._file = open(path, "a", newline="", buffering=1)  # noqa: SIM115 - kept open across steps
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._bytes = path.stat().st_size
        if is_new:
            self._bytes += self._writer.writerow(self.columns)

    def _enforce_cap(self) -> None:
        """Delete the oldest finished files while the folder is over the cap, keeping room for one part."""
        if self.max_bytes <= 0:
            return
        files: list[tuple[tuple[int, int], Path, int]] = []
        total = 0
        for path in self.log_dir.glob("*.csv"):
            try:
                size = path.stat().st_size
            except FileNotFoundError:  # another runner deleted it a moment ago
                continue
            total += size
            key = log_file_iteration(path)
            # Other runners may still write files of the current iteration: only older ones, and
            # this writer's own closed parts, are finished.
            if key is not None and (key[0] < self._iteration or path in self._closed_parts):
                files.append((key, path, size))
        budget = self.max_bytes - self.part_bytes
        if total <= budget:
            return
        deleted = []
        for _, path, size in sorted(files, key=lambda item: (item[0], item[1].name)):
            if total <= budget:
                break
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            total -= size
            deleted.append(path.name)
        self.deleted_files += len(deleted)
        if deleted and not self._warned_cap:
            self._warned_cap = True
            logger.warning("state log %s reached its cap of %.0f MB: deleting the oldest files (first: %s); "
                           "raise --state_log_max_mb (0 = no cap) to keep more", self.log_dir,
                           self.max_bytes / 1024 / 1024, deleted[0])
