"""A 2-node Ray cluster on this machine: env runners on the second node, that node killed mid-training.

RLlib's restart_failed_env_runners must bring the runners back (on the node that replaces the dead
one, as a cluster manager would start it) and the run must reach its stop condition.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from tests.chaos.harness import (
    TINY,
    VLIDAR,
    TrainingProcess,
    env_vars,
    iteration_steps,
    lifetime_steps,
    result_logs,
    rows_done,
)

pytestmark = [pytest.mark.chaos, pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(1200)]
RUNNER_RESOURCE = "chaos_runner_node"  # only the second node has it: env runners can run nowhere else
NUM_RUNNERS = 2
# A stop on env steps, not iterations: while the runners are gone RLlib still counts (empty) iterations.
STOP_TIMESTEPS = 3000  # 6 full iterations of 500 steps
REPLACEMENT_DELAY_S = 10.0  # the dead node stays away this long before a replacement joins


def runner_node_args(temp_dir: str) -> dict:
    """A worker node with room for the env runners and the resource that pins them there."""
    return {"num_cpus": NUM_RUNNERS, "resources": {RUNNER_RESOURCE: NUM_RUNNERS}, "temp_dir": temp_dir}


def healthy_runners(row: dict) -> int:
    """Env runners RLlib counted healthy in this iteration."""
    return int(row["fault_tolerance"]["num_healthy_workers"])


def test_losing_the_env_runner_node_mid_training_is_survived(tmp_path: Path, chaos_report, monkeypatch):
    from ray.cluster_utils import Cluster

    # No node IP is forced: a Ray driver rewrites 127.0.0.1 to the machine's own address, so the nodes
    # listen there (still this machine, nothing leaves it). Token auth is off: the nodes are all ours.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    temp_dir = tempfile.mkdtemp(prefix="rayc", dir="/tmp")  # short: Ray's socket paths are length-limited
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "temp_dir": temp_dir})
    train = None
    try:
        runner_node = cluster.add_node(**runner_node_args(temp_dir))
        chaos_report.did(f"started a Ray head (1 CPU) and a second node ({NUM_RUNNERS} CPUs, resource "
                         f"{RUNNER_RESOURCE}) on this machine, head at {cluster.address}")
        results = tmp_path / "results"
        folder = results / "node_loss"
        train = TrainingProcess([
            VLIDAR, "-n", "node_loss", "--results_dir", str(results), "--address", cluster.address,
            "--stop_timesteps", str(STOP_TIMESTEPS), "--num_env_runners", str(NUM_RUNNERS), *TINY,
            "--set", f"custom_resources_per_env_runner={json.dumps({RUNNER_RESOURCE: 1})}",
            "--set", "restart_failed_env_runners=true", "--set", "delay_between_env_runner_restarts_s=1",
        ], tmp_path / "train.log", env=env_vars())
        train.wait_for(lambda: rows_done(folder) >= 2, "second iteration", timeout_s=600)
        killed_after = rows_done(folder)
        cluster.remove_node(runner_node, allow_graceful=False)
        chaos_report.did(f"killed every process of the second node (SIGKILL) after iteration {killed_after}")
        time.sleep(REPLACEMENT_DELAY_S)
        cluster.add_node(**runner_node_args(temp_dir))
        chaos_report.did(f"{REPLACEMENT_DELAY_S:.0f} s later a replacement node with the same resource joined")
        code = train.wait_exit(900)
        output = train.output()
        assert code == 0, f"exit {code}:\n{output[-4000:]}"
        rows = result_logs(folder)[0].rows
        assert [r["training_iteration"] for r in rows] == list(range(1, len(rows) + 1))
        assert lifetime_steps(rows[-1]) >= STOP_TIMESTEPS
        chaos_report.checked(f"training reached its stop condition ({lifetime_steps(rows[-1])} >= {STOP_TIMESTEPS} "
                             f"env steps, iteration {len(rows)}), exit 0")
        restarts = int(rows[-1]["fault_tolerance"]["num_remote_worker_restarts"])
        assert restarts >= 1, "RLlib restarted no env runner"
        assert healthy_runners(rows[-1]) == NUM_RUNNERS, "the env runners did not come back"
        chaos_report.checked(f"{restarts} env-runner restart(s); all {NUM_RUNNERS} runners healthy at the end")
        affected = [r["training_iteration"] for r in rows if healthy_runners(r) < NUM_RUNNERS]
        empty = [r["training_iteration"] for r in rows if not iteration_steps(r) > 0]
        chaos_report.saw(f"{len(affected)} iteration(s) affected (fewer than {NUM_RUNNERS} healthy runners): "
                         f"{affected}; {len(empty)} of them sampled no env step")
    finally:
        if train is not None:
            train.finish()
        cluster.shutdown()
