"""The MLflow server killed for 60 s mid-run and started again on the same port and store: no metric is lost."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.chaos.harness import EXIT_BOUND_S, TINY, VLIDAR, TrainingProcess, result_logs, rows_done
from tests.mlflow_server import MlflowServer

pytestmark = [pytest.mark.chaos, pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(1200)]
OUTAGE_S = 60.0
ITERATIONS_AFTER_RETURN = 3  # iterations trained once the server is back, before the run is stopped


def kill_server(server: MlflowServer) -> None:
    """SIGKILL the server's process group (a crash, not a shutdown), then release its handles."""
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.stop()


def test_mlflow_server_down_for_60_s_loses_no_metric(tmp_path: Path, chaos_report):
    from mlflow import MlflowClient

    server = MlflowServer(tmp_path / "mlflow_server").start()
    results = tmp_path / "results"
    folder = results / "outage"
    train = TrainingProcess([VLIDAR, "-n", "outage", "--results_dir", str(results), "--stop_iteration", "100000",
                             "--mlflow_uri", server.url, *TINY], tmp_path / "train.log")
    try:
        train.wait_for(lambda: rows_done(folder) >= 2, "second iteration", timeout_s=600)
        kill_server(server)
        down_at = rows_done(folder)
        chaos_report.did(f"SIGKILL to the MLflow server on port {server.port} after iteration {down_at}")
        time.sleep(OUTAGE_S)
        assert train.running(), f"training died while the server was down:\n{train.output()[-3000:]}"
        back_at = rows_done(folder)
        server.start()  # same port, same SQLite store and artifact folder
        chaos_report.did(f"kept it down {OUTAGE_S:.0f} s (iterations {down_at + 1}..{back_at} trained meanwhile), "
                         f"started it again on port {server.port} with the same store")
        assert back_at > down_at, "no iteration trained while the server was down"
        train.wait_for(lambda: rows_done(folder) >= back_at + ITERATIONS_AFTER_RETURN,
                       f"{ITERATIONS_AFTER_RETURN} iterations after the server came back", timeout_s=600)
        train.signal_driver(signal.SIGINT)  # the documented way to stop: finish, checkpoint, log, exit
        chaos_report.did(f"Ctrl-C (SIGINT) to the driver after iteration {rows_done(folder)}")
        code = train.wait_exit(EXIT_BOUND_S * 2.5)
        chaos_report.saw(f"ppo_train.py exit status {code} (None: still running after {EXIT_BOUND_S * 2.5:.0f} s)")

        # Every check is collected before the case fails, so the report says all that went wrong.
        problems: list[str] = []
        reported = [int(r["training_iteration"]) for r in result_logs(folder)[0].rows]
        client = MlflowClient(server.url)
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if len(runs) != 1:
            problems.append(f"{len(runs)} MLflow runs: the outage must not start a second run")
        history = client.get_metric_history(runs[0].info.run_id, "training_iteration") if runs else []
        steps = sorted(m.step for m in history)
        if steps != reported:
            missing = sorted(set(reported) - set(steps))
            problems.append(f"MLflow has {len(steps)} steps for {len(reported)} iterations; missing {missing[:20]}"
                            f"{'...' if len(missing) > 20 else ''}; repeated {len(steps) - len(set(steps))}")
        else:
            chaos_report.checked(f"one MLflow run; training_iteration logged once at every step 1..{reported[-1]}, "
                                 f"the {back_at - down_at} outage iterations included")
        by_time = [m.step for m in sorted(history, key=lambda m: (m.timestamp, m.step))]
        if by_time != steps:
            problems.append("metric timestamps are not in iteration order")
        elif history:
            chaos_report.checked("metric timestamps follow the iteration order (each metric keeps its own time)")
        backlog = folder / "mlflow_backlog.jsonl"
        if backlog.exists() and backlog.read_text().strip():
            problems.append(f"an unsent backlog was left although the server was back: "
                            f"{len(backlog.read_text().splitlines())} lines in {backlog.name}")
        if code != 0:
            problems.append(f"exit {code} after Ctrl-C")
        for problem in problems:
            chaos_report.saw(f"wrong: {problem}")
        assert not problems, "; ".join(problems) + f"\n{train.output()[-3000:]}"
    finally:
        train.finish()
        server.stop()
