"""ppo_train.py as a user runs it: a subprocess, Ctrl-C (SIGINT) mid-run, and a Ray cluster head on 127.0.0.1 (with the live viewer)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from control.training.checkpoints import is_algorithm_checkpoint, is_complete_checkpoint, latest_checkpoint
from control.training.cli import main

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
VLIDAR = "resources/configs/ppo_vlidar_config.yaml"
TINY = ["--set", "train_batch_size=128", "--set", "minibatch_size=64", "--set", "num_epochs=1",
        "--set", "num_envs_per_env_runner=1",  # one env per runner: step counts are exact
        "--set", "env_config.max_episode_steps=50", "-v", "0"]

pytestmark = pytest.mark.timeout(400)


def env_vars() -> dict[str, str]:
    """The test's environment plus one thread per process."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def iterations_done(run_folder: Path) -> int:
    """Iterations Tune has recorded so far in a run folder (0 before the first)."""
    return sum(len(p.read_text().splitlines()) for p in run_folder.glob("train_*/*/result.json"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigint_during_training_leaves_a_restorable_checkpoint(ray_session, tmp_path):
    proc = subprocess.Popen(
        [PYTHON, "ppo_train.py", VLIDAR, "-n", "sig", "--results_dir", str(tmp_path), "--stop_iteration", "100000",
         *TINY], cwd=REPO, env=env_vars(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    folder = tmp_path / "sig"
    try:
        deadline = time.monotonic() + 180
        while iterations_done(folder) < 2:
            assert proc.poll() is None, f"ppo_train.py exited early:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "SIGINT received" in output and "checkpoint:" in output
    checkpoint = latest_checkpoint(folder)
    assert is_algorithm_checkpoint(checkpoint)
    stopped_at = iterations_done(folder)
    # Restorable: training continues from the iteration where Ctrl-C stopped it.
    assert main(["-n", "sig", "--results_dir", str(tmp_path), "--restore", "--stop_iteration",
                 str(stopped_at + 1), "-v", "0"]) == 0
    (result_file,) = folder.glob("train_2/*/result.json")
    assert json.loads(result_file.read_text().splitlines()[-1])["training_iteration"] == stopped_at + 1


def test_training_joins_a_ray_head_started_on_127_0_0_1(tmp_path):
    ray_bin = Path(PYTHON).with_name("ray")
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rayh", dir="/tmp")  # short: Ray's socket paths are length-limited
    # --block keeps the head in the foreground, so terminating this one process stops exactly this head.
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
         "--include-dashboard", "false", "--temp-dir", temp_dir, "--block", "--disable-usage-stats"],
        env=env_vars(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    viewer_port = free_port()
    try:
        # An env runner on the cluster (not in the driver) and the live viewer served by the driver on the head node.
        run = subprocess.Popen(
            [PYTHON, "ppo_train.py", VLIDAR, "-n", "cluster", "--results_dir", str(tmp_path), "--stop_iteration", "3",
             "--address", f"127.0.0.1:{port}", "--num_env_runners", "1", *TINY, "--viewer", str(viewer_port)],
            cwd=REPO, env=env_vars(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            news = read_viewer_events(viewer_port, want={"snapshots", "iterations"}, process=run, timeout_s=240)
            output, _ = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
        assert head.poll() is None, "the Ray head died"
        assert run.returncode == 0, output[-3000:]
        assert is_algorithm_checkpoint(latest_checkpoint(tmp_path / "cluster"))
        # The cluster's env runner published its car through the channel actor to the driver's page.
        cars = news["snapshots"][-1]
        assert len(cars["id"]) == 1 and cars["track"] == ["oval"] and all(isinstance(x, float) for x in cars["x"])
        assert news["iterations"][0]["iteration"] == 1
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)  # the head's own process group: only what this test started
            head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def read_viewer_events(port: int, want: set[str], process: subprocess.Popen, timeout_s: float) -> dict[str, list]:
    """The live viewer's server-sent events on 127.0.0.1:port, merged by key, until every key in `want` came."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    news: dict[str, list] = {}
    while time.monotonic() < deadline:
        assert process.poll() is None, f"ppo_train.py exited before the viewer showed {want - set(news)}:\n{process.stdout.read()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/events", timeout=30) as response:
                while not want <= set(news) and time.monotonic() < deadline:
                    line = response.readline()
                    if line.startswith(b"data:"):
                        for key, value in json.loads(line[len(b"data:"):]).items():
                            news.setdefault(key, []).extend(value if isinstance(value, list) else [value])
                return news
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.5)  # the viewer is not serving yet
    raise AssertionError(f"the viewer did not show {want - set(news)} in {timeout_s:.0f} s")


def test_help_lists_the_documented_flags():
    out = subprocess.run([PYTHON, "ppo_train.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    for flag in ("--name", "--overwrite", "--stop_iteration", "--stop_duration", "--stop_timesteps",
                 "--stop_progress", "--restore", "--state_log", "--mlflow_uri", "--address", "--num_env_runners",
                 "--seed", "--set", "--results_dir"):
        assert flag in out.stdout, flag


def _start_in_own_group(args: list[str]) -> subprocess.Popen:
    """ppo_train.py in its own process group and session, as a job under `timeout`, systemd, Slurm or Kubernetes."""
    return subprocess.Popen([PYTHON, "ppo_train.py", *args], cwd=REPO, env={**env_vars(), "RAY_ADDRESS": "local"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout_s: float) -> str:
    """The output of a process that must end by itself within timeout_s (killed with its group otherwise)."""
    try:
        output, _ = proc.communicate(timeout=timeout_s)
        return output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test made: only what it started
            proc.wait()


def _wait_for_line(proc: subprocess.Popen, text: str, deadline_s: float) -> list[str]:
    """Read the process's output until a line holds `text`; returns the lines read."""
    lines: list[str] = []
    deadline = time.monotonic() + deadline_s
    for line in proc.stdout:
        lines.append(line)
        if text in line:
            return lines
        assert time.monotonic() < deadline, "".join(lines)
    raise AssertionError("ppo_train.py ended before printing " + repr(text) + ":\n" + "".join(lines))


@pytest.mark.ray
def test_sigterm_to_the_process_group_mid_training_ends_with_a_restorable_checkpoint(tmp_path):
    proc = _start_in_own_group([VLIDAR, "-n", "term", "--results_dir", str(tmp_path), "--stop_iteration", "100000",
                                *TINY])
    folder = tmp_path / "term"
    try:
        deadline = time.monotonic() + 240
        while iterations_done(folder) < 2:
            assert proc.poll() is None, f"ppo_train.py exited early:\n{proc.stdout.read()}"
            assert time.monotonic() < deadline, "training did not start in time"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGTERM)  # every process of the group, as `timeout` and Kubernetes do
    finally:
        output = _finish(proc, timeout_s=180)
    assert proc.returncode == 0, output
    assert "SIGTERM received" in output and "checkpoint:" in output
    checkpoint = latest_checkpoint(folder, announce=False)
    assert is_complete_checkpoint(checkpoint)
    from ray.rllib.core.rl_module.rl_module import RLModule

    module = RLModule.from_checkpoint(checkpoint / "learner_group/learner/rl_module/default_policy")
    assert module is not None  # the weights load: the checkpoint is usable, not only present


@pytest.mark.ray
def test_sigterm_to_the_process_group_during_start_up_leaves_no_run_folder(tmp_path):
    proc = _start_in_own_group([VLIDAR, "-n", "early", "--results_dir", str(tmp_path), "--stop_iteration", "5",
                                *TINY])
    try:
        _wait_for_line(proc, "stops at:", deadline_s=120)  # the run folder exists, Ray is starting
        os.killpg(proc.pid, signal.SIGTERM)
    finally:
        output = _finish(proc, timeout_s=180)
    assert proc.returncode == 0, output
    if "before training started" in output:
        assert not (tmp_path / "early").exists(), output  # the NAME is free again
    else:  # the signal landed after Tune had started: one iteration, then a checkpoint
        assert is_complete_checkpoint(latest_checkpoint(tmp_path / "early", announce=False)), output
