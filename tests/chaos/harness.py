"""What the chaos cases share: ppo_train.py in its own process group, and readers of what a run left on disk.

Every reader here is independent of the project's own checkpoint and state-log code on purpose:
the suite checks the files a user (and RLlib) relies on, not the project's opinion of them.
"""
from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
VLIDAR = "resources/configs/ppo_vlidar_config.yaml"
# A few seconds per iteration on 2 busy cores; one env per runner so step counts are exact.
TINY = ["--set", "train_batch_size=500", "--set", "minibatch_size=250", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1", "--set", "env_config.max_episode_steps=100",
        "--set", "model.fcnet_hiddens=[16,16]", "-v", "1"]
# Files RLlib reads when it restores an Algorithm (new API stack, torch, one module).
CHECKPOINT_FILES = ("rllib_checkpoint.json", "algorithm_state.pkl", "env_runner/state.pkl",
                    "learner_group/state.pkl", "learner_group/learner/state.pkl",
                    "learner_group/learner/rl_module/default_policy/module_state.pkl")
EXIT_BOUND_S = 120.0  # how long a signalled run may take to checkpoint and exit (a liveness bound)


def env_vars(**extra: str) -> dict[str, str]:
    """The test's environment, one thread per process, plus `extra`."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


class TrainingProcess:
    """`python ppo_train.py ARGS` as its own process group (what systemd, Slurm or `timeout` signal), output to a file."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen([PYTHON, "ppo_train.py", *args], cwd=REPO, env=env or env_vars(),
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.process.pid

    def output(self) -> str:
        """Everything the process printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        """True while the driver process lives."""
        return self.process.poll() is None

    def signal_group(self, sig: signal.Signals) -> None:
        """Send `sig` to the whole process group (driver and every Ray process it started)."""
        os.killpg(self.pid, sig)

    def signal_driver(self, sig: signal.Signals) -> None:
        """Send `sig` to the driver process only."""
        self.process.send_signal(sig)

    def wait_exit(self, timeout_s: float = EXIT_BOUND_S) -> int | None:
        """The exit status, or None when the driver still runs after timeout_s."""
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def finish(self) -> list[int]:
        """Kill what is left of this process group (only ours); returns the pids that were still alive."""
        if self.running():
            self.process.kill()
            self.process.wait()
        leftover = group_pids(self.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self._log.close()
        return leftover

    def wait_for(self, condition: Callable[[], Any], what: str, timeout_s: float = 300.0,
                 poll_s: float = 0.2) -> Any:
        """Poll `condition` until it is truthy; fail when the driver exits first or time runs out."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = condition()
            if value:
                return value
            if not self.running():
                raise AssertionError(f"ppo_train.py exited ({self.process.returncode}) before {what}:\n"
                                     f"{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} after {timeout_s:.0f} s:\n{self.output()[-4000:]}")
            time.sleep(poll_s)


def group_pids(pgid: int) -> list[int]:
    """Pids of the live (non-zombie) processes in process group `pgid`."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def files_being_written(pgid: int, markers: tuple[str, ...] = ("/learner_group/", "/env_runner/", "/algorithm_state.",
                                                               "/rllib_checkpoint.json")) -> list[str]:
    """Paths that processes of group `pgid` hold open and whose names say they are checkpoint files."""
    paths = []
    for pid in group_pids(pgid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if any(marker in target for marker in markers):
                paths.append(target)
    return paths


def wait_group_gone(pgid: int, timeout_s: float = 30.0) -> list[int]:
    """Wait until no process of group `pgid` is left; returns the pids still alive after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while (alive := group_pids(pgid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return alive


# ----------------------------------------------------------------------------- results
@dataclass
class RowLog:
    """The result rows Tune wrote into one train_<n>/ folder, and whether its last line was torn."""

    start: int  # n of train_<n>
    rows: list[dict[str, Any]]
    torn_lines: int


def result_logs(run_folder: Path) -> list[RowLog]:
    """result.json of every train_<n>/ of a run, in start order."""
    logs = []
    for train_dir in sorted(run_folder.glob("train_*"), key=lambda p: int(p.name.split("_")[1])):
        rows, torn = [], 0
        for result_file in train_dir.glob("*/result.json"):
            for line in result_file.read_text().splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:  # a SIGKILL may cut the line being written
                    torn += 1
        logs.append(RowLog(int(train_dir.name.split("_")[1]), rows, torn))
    return logs


def iterations(log: RowLog) -> list[int]:
    """training_iteration of each row."""
    return [int(r["training_iteration"]) for r in log.rows]


def lifetime_steps(row: dict[str, Any]) -> int:
    """Env steps sampled over the run's lifetime at this row."""
    return int(row["num_env_steps_sampled_lifetime"])


def iteration_steps(row: dict[str, Any]) -> int:
    """Env steps sampled in this row's iteration (0 when RLlib reports none: NaN while no runner is healthy)."""
    value = (row.get("env_runners") or {}).get("num_env_steps_sampled")
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def rows_done(run_folder: Path) -> int:
    """Result rows written so far over all starts of a run."""
    return sum(len(log.rows) for log in result_logs(run_folder)) if run_folder.is_dir() else 0


# ----------------------------------------------------------------------------- checkpoints
def checkpoint_iteration(checkpoint: Path) -> int | None:
    """The training iteration a checkpoint holds, or None when it is not complete (a file missing or torn)."""
    if not all((checkpoint / name).is_file() for name in CHECKPOINT_FILES):
        return None
    try:
        for name in CHECKPOINT_FILES:
            if name.endswith(".pkl"):
                with open(checkpoint / name, "rb") as f:
                    state = pickle.load(f)
                if name == "algorithm_state.pkl":
                    iteration = int(state["training_iteration"])
            else:
                json.loads((checkpoint / name).read_text())
    except Exception:  # noqa: BLE001 - any unreadable file makes the checkpoint incomplete
        return None
    return iteration


def checkpoints(run_folder: Path) -> list[Path]:
    """Every checkpoint_* folder of a run (complete or not)."""
    return sorted(run_folder.glob("train_*/*/checkpoint_*"))


def newest_complete_checkpoint(run_folder: Path) -> tuple[Path, int] | None:
    """(checkpoint, iteration) of the complete checkpoint with the highest iteration, or None."""
    complete = [(c, it) for c in checkpoints(run_folder) if (it := checkpoint_iteration(c)) is not None]
    return max(complete, key=lambda pair: pair[1]) if complete else None


def incomplete_checkpoints(run_folder: Path) -> list[Path]:
    """checkpoint_* folders that RLlib could not restore."""
    return [c for c in checkpoints(run_folder) if checkpoint_iteration(c) is None]


def load_policy(checkpoint: Path) -> Any:
    """The RLModule of a checkpoint, as rollout loads it (raises when the weights are not there)."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    return RLModule.from_checkpoint(str(checkpoint / "learner_group/learner/rl_module/default_policy"))


def restored_from(output: str) -> Path | None:
    """The checkpoint ppo_train.py says it restores ("restoring: PATH"), or None."""
    for line in output.splitlines():
        if line.startswith("restoring:"):
            return Path(line.split(":", 1)[1].strip())
    return None


# ----------------------------------------------------------------------------- state log
@dataclass
class StateLog:
    """Rows of a run's state log (training runners only) and how many torn rows were dropped."""

    rows: list[dict[str, str]]
    torn_rows: int
    files: int


def read_state_log(log_dir: Path) -> StateLog:
    """Every complete row under log_dir, plain CSV or gzip, rotated or not; a torn last row is counted, not kept."""
    rows: list[dict[str, str]] = []
    torn = files = 0
    for path in sorted(p for p in log_dir.rglob("*") if p.is_file() and ".csv" in p.name):
        if path.name.startswith("eval_"):
            continue
        files += 1
        text = _readable_text(path)
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):  # the row being written when the process died
            lines.pop()
            torn += 1
        header: list[str] | None = None
        for record in csv.reader(io.StringIO("".join(lines))):
            if record and record[0] == "episode":
                header = record
                continue
            if header is None or len(record) != len(header):
                torn += 1
                continue
            rows.append(dict(zip(header, record, strict=True)))
    return StateLog(rows, torn, files)


def _readable_text(path: Path) -> str:
    """A file's text; for gzip, everything before a cut-off end (a killed writer)."""
    if not path.name.endswith(".gz"):
        return path.read_text(errors="replace")
    out = bytearray()
    with gzip.open(path, "rb") as f:
        with contextlib.suppress(EOFError, zlib.error, gzip.BadGzipFile):
            while chunk := f.read(1 << 16):
                out += chunk
    return out.decode(errors="replace")


def episode_gaps(rows: list[dict[str, str]]) -> list[str]:
    """What is missing in the rows: per env runner, episodes numbered without gaps, steps 1..n, every
    episode but the runner's last one ended (done). Empty when nothing is missing."""
    problems: list[str] = []
    by_runner: dict[str, dict[int, list[dict[str, str]]]] = {}
    for row in rows:
        by_runner.setdefault(row["worker_index"], {}).setdefault(int(row["episode"]), []).append(row)
    for runner, episodes in by_runner.items():
        numbers = sorted(episodes)
        if numbers != list(range(numbers[0], numbers[-1] + 1)):
            problems.append(f"runner {runner}: episodes {sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))} missing")
        for number in numbers:
            steps = sorted(int(r["steps"]) for r in episodes[number])
            if steps != list(range(steps[0], steps[0] + len(steps))) or steps[0] > 1:
                problems.append(f"runner {runner} episode {number}: steps not 1..n ({steps[:3]}...{steps[-3:]})")
            if number != numbers[-1] and max(episodes[number], key=lambda r: int(r["steps"]))["done"] != "True":
                problems.append(f"runner {runner} episode {number}: rows missing before its end")
    return problems


def count_rows_through(rows: list[dict[str, str]], iteration: int) -> int:
    """State-log rows sampled for iterations 1..iteration."""
    return sum(1 for r in rows if int(r["iteration"]) <= iteration)


def mount_tmpfs(mount_point: Path, size: str) -> Path:
    """Mount a tmpfs of `size` at mount_point; raises OSError with mount's reason when the machine refuses."""
    mount_point.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(done.stderr.strip() or f"mount exited {done.returncode}")
    return mount_point


def unmount(mount_point: Path) -> None:
    """Unmount what mount_tmpfs mounted (lazily: a process that still holds a file cannot block it)."""
    subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)
