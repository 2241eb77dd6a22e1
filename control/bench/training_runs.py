"""Training runs for the benchmarks: the shipped configs, one run through ppo_train.py's code, its result.json."""
from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS_DIR = REPO_ROOT / "resources" / "configs"
VLIDAR_CONFIG = CONFIGS_DIR / "ppo_vlidar_config.yaml"
CAMERA_CONFIG = CONFIGS_DIR / "ppo_camera_config.yaml"
PROCEDURAL_CONFIG = CONFIGS_DIR / "ppo_vlidar_procedural_config.yaml"


def machine_description() -> str:
    """One line naming the machine the figures come from: CPU model, cores, Python, OS."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores (nproc), Python {platform.python_version()}, {platform.system()} {platform.release()}"


# --------------------------------------------------------------------------- one training run
@dataclass
class TrainingRun:
    """A finished benchmark training run: its per-iteration results and what stopped it."""

    name: str
    folder: Path
    rows: list[dict[str, Any]]  # result.json, one dict per iteration
    wall_s: float  # the whole call: Ray start (when not running), algorithm build, training, final checkpoint
    stop_reason: str
    checkpoint: Path | None


def read_results(run_folder: Path) -> list[dict[str, Any]]:
    """Every iteration's Tune result of the run's first Tune run (train_1/<trial>/result.json)."""
    paths = sorted(run_folder.glob("train_1/*/result.json"))
    if not paths:
        raise UserError(f"no result.json under {run_folder}/train_1: the run did not finish an iteration")
    return [json.loads(line) for line in paths[0].read_text().splitlines() if line.strip()]


def train_config(config: Path, results_dir: Path, name: str, *, progress_pct: float | None, cap_s: float,
                 max_iterations: int | None = None, overrides: list[str] | None = None,
                 seed: int | None = None) -> TrainingRun:
    """Train `config` into results_dir/name with ppo_train.py's own train(); the config's own stop: is replaced."""
    from control.training.cli import resolve_training_config, train

    stop: dict[str, Any] = {"duration": float(max(1, round(cap_s)))}
    if progress_pct is not None:
        stop["progress"] = float(progress_pct)
    if max_iterations is not None:
        stop["iteration"] = int(max_iterations)
    start_s = time.monotonic()
    resolved, recorded = resolve_training_config(config, name=name, overrides=["stop={}", *(overrides or [])],
                                                 seed=seed, stop=stop)
    outcome = train(resolved, results_dir=results_dir, name=name, overwrite=True, recorded_config=recorded,
                    command_line=[str(config), "-n", name], verbose=0)
    wall_s = time.monotonic() - start_s
    folder = results_dir / name
    return TrainingRun(name=name, folder=folder, rows=read_results(folder), wall_s=wall_s,
                       stop_reason=outcome.stop_reason, checkpoint=outcome.checkpoint)


@contextlib.contextmanager
def benchmark_dir(keep_in: str | Path | None) -> Iterator[Path]:
    """The folder for a benchmark's runs: `keep_in` (kept), else a temporary folder deleted at the end."""
    if keep_in:
        path = Path(keep_in).resolve()
        path.mkdir(parents=True, exist_ok=True)
        print(f"benchmark runs in {path}", flush=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="bench_train_"))
    print(f"benchmark runs in {path} (deleted at the end)", flush=True)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def display_path(path: Path) -> str:
    """The path relative to the repo root when it is inside it."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def format_optional(value: Any, spec: str) -> str:
    """`value` formatted with `spec`, or '-' for None (aligned to the spec's width)."""
    if value is None:
        return format("-", spec.rstrip("bcdeEfFgGnosxX%").split(".")[0])  # '>12.2f' -> '>12'
    return format(value, spec)


def config_path(config: str | None, default: Path) -> Path:
    """The given config (resolved) or the shipped default; UserError when it is not a file."""
    path = Path(config).expanduser().resolve() if config else default
    if not path.is_file():
        raise UserError(f"config '{config or default}' does not exist; expected a YAML file such as {VLIDAR_CONFIG}")
    return path
