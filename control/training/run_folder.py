"""The run folder results/<NAME>/: created once, refused when reused without --overwrite or --restore."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from control.errors import ConfigError, UserError
from control.redact import redact_argv, redact_mapping
from control.training.run_lock import LOCK_FILENAME

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILENAME = "config.yaml"
PREVIOUS_CONFIG_FILENAME = "config.prev.yaml"  # the config of the start before the last restore
COMMAND_FILENAME = "command.txt"
STATE_LOG_DIRNAME = "state_log"  # --state_log CSV files (control/integration/callbacks/state_log.py)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_results_dir() -> Path:
    """$RESULTS when set, else results/ at the repo root."""
    return Path(os.environ.get("RESULTS") or REPO_ROOT / "results").resolve()


def default_run_name(config_path: str | Path | None) -> str:
    """<config stem>_<YYYYmmdd-HHMMSS>, e.g. ppo_vlidar_config_20250101-120000."""
    stem = Path(config_path).stem if config_path else "run"
    return f"{stem}_{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_name(name: str) -> str:
    """The name, or ConfigError when it is not a plain folder name."""
    if not _NAME_RE.match(name):
        raise ConfigError(f"bad run name '{name}': use letters, digits, '.', '_' and '-' (it names a folder)")
    return name


def prepare_run_folder(results_dir: Path, name: str, *, overwrite: bool, restore: bool,
                       restore_elsewhere: bool = False) -> Path:
    """Create results_dir/name; an existing run is reused only with restore, replaced only with overwrite.

    restore_elsewhere: the checkpoint is a path (maybe another run's), so a new run folder may be made.
    """
    folder = results_dir / check_run_name(name)
    if restore:
        if folder.is_dir():
            return folder
        if not restore_elsewhere:
            raise UserError(f"--restore: no run named '{name}' under {results_dir}")
    elif folder.exists() and any(p.name != LOCK_FILENAME for p in folder.iterdir()):
        if not overwrite:
            raise UserError(f"run folder {folder} already exists: pick another --name, continue it with "
                            "--restore, or replace it with --overwrite")
        if not (folder / CONFIG_FILENAME).is_file():
            # Only ever delete what looks like one of our runs.
            raise UserError(f"--overwrite refused: {folder} is not a run folder (it has no {CONFIG_FILENAME})")
        _empty_folder(folder, keep=LOCK_FILENAME)  # the lock stays: it is what makes this delete safe
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _empty_folder(folder: Path, keep: str) -> None:
    """Delete everything in `folder` except the entry named `keep`."""
    for entry in folder.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def has_run_files(folder: Path) -> bool:
    """True when `folder` already holds a run (its config.yaml)."""
    return (folder / CONFIG_FILENAME).is_file()


def has_trained(path: Path) -> bool:
    """True when `path` (a run folder or one start's train_<n>/) holds a checkpoint or a reported iteration."""
    if any(p.is_dir() for p in path.rglob("checkpoint_*")):
        return True
    return any(f.stat().st_size > 0 for f in path.rglob("result.json"))


class RunStart:
    """What one start adds to a run folder, so a start that trained nothing can take it back."""

    def __init__(self, folder: Path, *, fresh: bool):
        self.folder = folder
        self.fresh = fresh  # True: this start made the run (nothing of an earlier run is in it)
        self._segments_before = _segments(folder)

    def remove_if_untrained(self) -> None:
        """Remove what this start made when it trained nothing: the whole run if new, else its train_<n>/."""
        if not self.folder.is_dir():
            return
        if self.fresh:
            if not has_trained(self.folder):
                shutil.rmtree(self.folder, ignore_errors=True)
            return
        for segment in _segments(self.folder) - self._segments_before:
            if not has_trained(self.folder / segment):
                shutil.rmtree(self.folder / segment, ignore_errors=True)


def _segments(folder: Path) -> set[str]:
    """The train_<n>/ folders (one per start) of a run folder."""
    return {p.name for p in folder.glob("train_*") if p.is_dir()} if folder.is_dir() else set()


def write_config(folder: Path, resolved_config: dict[str, Any]) -> None:
    """Write the resolved config (credentials masked); an earlier config.yaml is kept as config.prev.yaml."""
    path = folder / CONFIG_FILENAME
    text = ("# Resolved config of this run (current RLlib names); ppo_train.py reads it back.\n"
            + yaml.safe_dump(redact_mapping(resolved_config), sort_keys=False, default_flow_style=None))
    if path.is_file() and path.read_text() != text:
        os.replace(path, folder / PREVIOUS_CONFIG_FILENAME)
    # Write-then-rename: a crash mid-write never leaves a half config.yaml for rollouts and restores.
    tmp = path.with_name(f".{CONFIG_FILENAME}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def append_command_line(folder: Path, argv: list[str]) -> None:
    """Append this invocation's command line (credentials masked) to command.txt."""
    command = " ".join(shlex.quote(a) for a in ["python", "ppo_train.py", *redact_argv(argv)])
    with open(folder / COMMAND_FILENAME, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  cd {shlex.quote(os.getcwd())} && {command}\n")


def write_run_files(folder: Path, resolved_config: dict[str, Any], argv: list[str]) -> None:
    """Write the resolved config and append this invocation's command line."""
    write_config(folder, resolved_config)
    append_command_line(folder, argv)
