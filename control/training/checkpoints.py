"""Finding a run's checkpoints and restoring one into a new Tune run (counters carry on)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from control.errors import CheckpointError

# A directory is an RLlib Algorithm checkpoint when it holds this file.
ALGORITHM_STATE_FILES = ("algorithm_state.pkl", "algorithm_state.msgpack")


def is_algorithm_checkpoint(path: str | Path) -> bool:
    """True when `path` is a directory holding an RLlib Algorithm checkpoint."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ALGORITHM_STATE_FILES)


def list_checkpoints(run_folder: str | Path) -> list[Path]:
    """All Algorithm checkpoints under a run folder, oldest first (by modification time)."""
    root = Path(run_folder)
    found = [p for p in root.rglob("checkpoint_*") if is_algorithm_checkpoint(p)]
    return sorted(found, key=lambda p: max(f.stat().st_mtime for f in p.iterdir()))


def latest_checkpoint(run_folder: str | Path) -> Path:
    """The newest checkpoint of a run; raises CheckpointError when it has none."""
    found = list_checkpoints(run_folder)
    if not found:
        raise CheckpointError(f"no checkpoint under {run_folder}: train it first (make train NAME=...) "
                              "or pass --restore PATH to a checkpoint folder")
    return found[-1]


def resolve_restore_path(restore: str | None, run_folder: Path) -> Path:
    """--restore '' -> the latest checkpoint of the run; --restore PATH -> that checkpoint (or a run's latest)."""
    if not restore:
        return latest_checkpoint(run_folder)
    path = Path(restore).expanduser().resolve()
    if is_algorithm_checkpoint(path):
        return path
    if path.is_dir():
        return latest_checkpoint(path)
    raise CheckpointError(f"--restore {restore}: no such folder; expected a checkpoint folder "
                          "(.../checkpoint_000010, holding algorithm_state.pkl) or a run folder under results/")


class RestoreCallback(RLlibCallback):
    """Loads `checkpoint_path` into the new Algorithm: weights, optimizer, iteration and timestep counters."""

    checkpoint_path: str = ""

    def on_algorithm_init(self, *, algorithm: Any, **kwargs: Any) -> None:
        """Restore before the first iteration so the counters continue from the checkpoint."""
        algorithm.restore_from_path(self.checkpoint_path)


def make_restore_callback(checkpoint: str | Path) -> type[RestoreCallback]:
    """A RestoreCallback class bound to `checkpoint` (RLlib instantiates callback classes without arguments)."""
    return type("BoundRestoreCallback", (RestoreCallback,), {"checkpoint_path": str(Path(checkpoint).resolve())})
