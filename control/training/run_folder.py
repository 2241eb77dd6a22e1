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

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_FILENAME = "config.yaml"
COMMAND_FILENAME = "command.txt"
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
    elif folder.exists() and any(folder.iterdir()):
        if not overwrite:
            raise UserError(f"run folder {folder} already exists: pick another --name, continue it with "
                            "--restore, or replace it with --overwrite")
        if not (folder / CONFIG_FILENAME).is_file():
            # Only ever delete what looks like one of our runs.
            raise UserError(f"--overwrite refused: {folder} is not a run folder (it has no {CONFIG_FILENAME})")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_run_files(folder: Path, resolved_config: dict[str, Any], argv: list[str]) -> None:
    """Write the resolved config and append this invocation's command line."""
    (folder / CONFIG_FILENAME).write_text(
        "# Resolved config of this run (current RLlib names); ppo_train.py reads it back.\n"
        + yaml.safe_dump(resolved_config, sort_keys=False, default_flow_style=None))
    command = " ".join(shlex.quote(a) for a in ["python", "ppo_train.py", *argv])
    with open(folder / COMMAND_FILENAME, "a") as f:
        f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  cd {shlex.quote(os.getcwd())} && {command}\n")
