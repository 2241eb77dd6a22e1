"""results/<NAME>/mlflow_backlog.jsonl: what a training run could not send to MLflow, kept until it is sent.

One JSON object per line, each naming the MLflow run it belongs to by `run_index` (the trial:
0 for a plain training run; its id is in `mlflow_run_id[.<index>]`) and, when it was known,
`run_id`. Entry types:

- `run`: how to create the run when it was never created (experiment, run_name, tags)
- `params`: {key: value} (already-logged keys are skipped when sent)
- `metrics`: [[key, value, timestamp_ms, step], ...] (MLflow ignores an identical resend)
- `text`: an artifact given by its text (`artifact_file`, `text`)
- `dir`: a local folder to upload (`local_dir`, `artifact_path`)
- `status`: the run's final status (FINISHED / FAILED)

The callback that wrote it sends it when it next starts in the same run folder (`--restore`);
`python -m control.integration.mlflow_sync -n NAME` sends it without training. Nothing here
holds a credential: the file names no tracking URI.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BACKLOG_FILE = "mlflow_backlog.jsonl"
ENTRY_TYPES = ("run", "params", "metrics", "text", "dir", "status")


def backlog_path(run_folder: Path) -> Path:
    """The backlog file of a run folder."""
    return Path(run_folder) / BACKLOG_FILE


def append_entries(run_folder: Path, entries: Iterable[dict[str, Any]]) -> int:
    """Append entries (one line each) and fsync: a crash after this keeps them; returns how many."""
    lines = [json.dumps(entry, sort_keys=True, default=str) + "\n" for entry in entries]
    if not lines:
        return 0
    path = backlog_path(run_folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.writelines(lines)
        fh.flush()
        os.fsync(fh.fileno())
    return len(lines)


def read_entries(run_folder: Path) -> list[dict[str, Any]]:
    """Every entry of the backlog, in the order written ([] when there is none); a torn last line is left out."""
    path = backlog_path(run_folder)
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill while appending: the entries before it are whole
        if isinstance(entry, dict) and entry.get("type") in ENTRY_TYPES:
            entries.append(entry)
    return entries


def replace_entries(run_folder: Path, entries: list[dict[str, Any]]) -> None:
    """Make the backlog exactly `entries` (atomically); no entries removes the file."""
    path = backlog_path(run_folder)
    if not entries:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.writelines(json.dumps(entry, sort_keys=True, default=str) + "\n" for entry in entries)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def describe(entries: Iterable[dict[str, Any]]) -> str:
    """'120 metrics, 14 params, 3 artifacts, 1 status' for a list of entries."""
    counts = {"metrics": 0, "params": 0, "artifacts": 0, "status": 0}
    for entry in entries:
        kind = entry.get("type")
        if kind == "metrics":
            counts["metrics"] += len(entry.get("metrics", []))
        elif kind == "params":
            counts["params"] += len(entry.get("params", {}))
        elif kind in ("text", "dir"):
            counts["artifacts"] += 1
        elif kind == "status":
            counts["status"] += 1
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "nothing"
