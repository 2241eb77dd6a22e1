"""Finding a run's checkpoints and restoring one into a new Tune run (counters carry on)."""
from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path
from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback

from control.errors import CheckpointError

# A directory is an RLlib Algorithm checkpoint when it holds this file.
ALGORITHM_STATE_FILES = ("algorithm_state.pkl", "algorithm_state.msgpack")
# RLlib's Checkpointable writes each component (algorithm, learner_group, env_runner, ...) as a folder
# with these two files, its state file and one sub-folder per sub-component.
COMPONENT_FILES = ("class_and_ctor_args.pkl", "metadata.json")
ALGORITHM_METADATA_FILE = "rllib_checkpoint.json"  # the algorithm's own metadata.json
# The policy's weights: without them a restore would train on from fresh random weights.
MODULE_STATES_DIR = Path("learner_group") / "learner" / "rl_module"


def is_algorithm_checkpoint(path: str | Path) -> bool:
    """True when `path` is a directory holding an RLlib Algorithm checkpoint (complete or not)."""
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ALGORITHM_STATE_FILES)


def missing_parts(checkpoint: str | Path) -> list[str]:
    """What an Algorithm checkpoint lacks for RLlib to restore all of it ([] = complete)."""
    root = Path(checkpoint)
    if not root.is_dir():
        return ["the folder itself"]
    missing: list[str] = []
    if not any(_nonempty(root / name) for name in ALGORITHM_STATE_FILES):
        missing.append("algorithm_state.pkl")
    for name in ("class_and_ctor_args.pkl", ALGORITHM_METADATA_FILE):
        if not _nonempty(root / name):
            missing.append(name)
    modules = root / MODULE_STATES_DIR
    if not any(_has_state(m, "module_state") for m in (modules.iterdir() if modules.is_dir() else ())):
        missing.append(f"{MODULE_STATES_DIR}/<module>/module_state.* (the policy weights)")
    # Every component folder RLlib started must have been finished: its ctor args, metadata and state.
    for folder in sorted(p for p in root.rglob("*") if p.is_dir()):
        if not (folder / COMPONENT_FILES[0]).exists() and not (folder / COMPONENT_FILES[1]).exists():
            continue  # not a component folder (RLlib writes ctor args first)
        rel = folder.relative_to(root)
        for name in COMPONENT_FILES:
            if not _nonempty(folder / name):
                missing.append(f"{rel}/{name}")
        if not (_has_state(folder, "state") or _has_state(folder, "module_state")):
            missing.append(f"{rel}/state.*")
    return missing


def is_complete_checkpoint(path: str | Path) -> bool:
    """True when `path` is an Algorithm checkpoint with every part RLlib restores."""
    return is_algorithm_checkpoint(path) and not missing_parts(path)


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _has_state(folder: Path, stem: str) -> bool:
    return any(_nonempty(folder / f"{stem}.{ext}") for ext in ("pkl", "msgpack", "pt"))


def checkpoint_iteration(checkpoint: Path) -> int | None:
    """The training iteration a checkpoint was saved at (RLlib records it in algorithm_state), or None."""
    path = checkpoint / ALGORITHM_STATE_FILES[0]
    try:
        if path.is_file():
            with open(path, "rb") as f:
                state = pickle.load(f)  # the run's own file, which RLlib's restore unpickles anyway
        else:
            import msgpack

            state = msgpack.unpackb((checkpoint / ALGORITHM_STATE_FILES[1]).read_bytes(), strict_map_key=False)
        return int(state["training_iteration"])
    except Exception:  # unreadable or torn: not usable as "latest" anyway
        return None


def _order_key(checkpoint: Path) -> tuple[int, int, str]:
    """(iteration, start number of train_<n>/, folder name): iterations carry on over restores, Tune's index does not."""
    segment = next((p.name for p in checkpoint.parents if re.fullmatch(r"train_\d+", p.name)), "train_0")
    return (checkpoint_iteration(checkpoint) or -1, int(segment.split("_")[1]), checkpoint.name)


def list_checkpoints(run_folder: str | Path) -> list[Path]:
    """All Algorithm checkpoints under a run folder (complete or not), oldest first by training iteration."""
    root = Path(run_folder)
    return sorted((p for p in root.rglob("checkpoint_*") if is_algorithm_checkpoint(p)), key=_order_key)


def latest_checkpoint(run_folder: str | Path, *, announce: bool = True) -> Path:
    """The newest complete checkpoint of a run; incomplete newer ones are skipped with a warning.

    Raises CheckpointError when the run has no complete checkpoint.
    """
    candidates = [p for p in Path(run_folder).rglob("checkpoint_*") if p.is_dir()]
    candidates.sort(key=_order_key)
    for checkpoint in reversed(candidates):
        missing = missing_parts(checkpoint)
        if not missing:
            if announce:
                print(f"checkpoint: using {checkpoint} (iteration {checkpoint_iteration(checkpoint)}), "
                      "the newest complete one")  # information, not a warning: stdout
            return checkpoint
        print(f"warning: skipping incomplete checkpoint {checkpoint}: missing {', '.join(missing)}", file=sys.stderr)
    raise CheckpointError(f"no complete checkpoint under {run_folder}: train it first (make train NAME=...) "
                          "or pass --restore PATH to a checkpoint folder")


def resolve_restore_path(restore: str | None, run_folder: Path) -> Path:
    """--restore '' -> the newest complete checkpoint of the run; --restore PATH -> that checkpoint (or a run's)."""
    if not restore:
        return latest_checkpoint(run_folder)
    path = Path(restore).expanduser().resolve()
    if is_algorithm_checkpoint(path):
        missing = missing_parts(path)
        if missing:
            raise CheckpointError(f"--restore {restore}: incomplete checkpoint, missing {', '.join(missing)}; "
                                  "pick another checkpoint_* folder or the run folder (its newest complete one)")
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
        # Checked again here, where it is read: RLlib skips a missing component folder without a word,
        # and a missing learner_group/ would mean training on from fresh random weights.
        missing = missing_parts(self.checkpoint_path)
        if missing:
            raise CheckpointError(f"cannot restore {self.checkpoint_path}: incomplete checkpoint, missing "
                                  f"{', '.join(missing)}; restore another checkpoint_* folder")
        algorithm.restore_from_path(self.checkpoint_path)


def make_restore_callback(checkpoint: str | Path) -> type[RestoreCallback]:
    """A RestoreCallback class bound to `checkpoint` (RLlib instantiates callback classes without arguments)."""
    return type("BoundRestoreCallback", (RestoreCallback,), {"checkpoint_path": str(Path(checkpoint).resolve())})
