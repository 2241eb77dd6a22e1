"""SIGKILL of ppo_train.py mid-iteration, then --restore: nothing reported is lost or reported twice."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.chaos.harness import (
    PYTHON,
    REPO,
    TINY,
    VLIDAR,
    TrainingProcess,
    count_rows_through,
    env_vars,
    episode_gaps,
    iteration_steps,
    iterations,
    lifetime_steps,
    newest_complete_checkpoint,
    read_state_log,
    restored_from,
    result_logs,
    rows_done,
)

# Not in the quick subset: a kill, a restore and an MLflow server cost ~3 min; make chaos runs it.
pytestmark = [pytest.mark.chaos, pytest.mark.ray, pytest.mark.timeout(900)]


def test_sigkill_mid_iteration_then_restore_continues_without_gap_or_repeat(tmp_path: Path, chaos_report):
    from mlflow import MlflowClient

    results = tmp_path / "results"
    folder = results / "kill"
    mlflow_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["-n", "kill", "--results_dir", str(results), "--state_log", "--mlflow_uri", mlflow_uri]
    train = TrainingProcess([VLIDAR, *common, "--stop_iteration", "100000", "--checkpoint_frequency", "1", *TINY],
                            tmp_path / "train_1.log")
    try:
        # Kill right after a checkpoint is complete: the driver is then early in the next iteration.
        def checkpointed_iteration() -> int | None:
            newest = newest_complete_checkpoint(folder) if rows_done(folder) >= 2 else None
            return newest[1] if newest is not None and newest[1] == rows_done(folder) else None

        kept_iteration = train.wait_for(checkpointed_iteration, "second checkpoint", timeout_s=600, poll_s=0.05)
        (last_row,) = result_logs(folder)[0].rows[-1:]
        time.sleep(0.3 * float(last_row["time_this_iter_s"]))  # into the next iteration, well before its end
        train.signal_driver(signal.SIGKILL)
        train.wait_exit(30)
        chaos_report.did(f"SIGKILL to ppo_train.py (pid {train.pid}) during iteration {kept_iteration + 1}, "
                         f"after checkpoint of iteration {kept_iteration} was complete")
    finally:
        leftover = train.finish()
    chaos_report.saw(f"{len(leftover)} processes of its group were still alive after the kill (killed now)")

    (first,) = result_logs(folder)
    reported = iterations(first)
    chaos_report.saw(f"train_1 reported iterations {reported[0]}..{reported[-1]}, {first.torn_lines} torn result line(s)")
    newest_path, newest_iteration = newest_complete_checkpoint(folder)
    assert newest_iteration == kept_iteration

    # The state log keeps every row up to the kill, except at most the episode that was running.
    state_log = read_state_log(folder / "state_log")
    through_kept = count_rows_through(state_log.rows, kept_iteration)
    assert through_kept == lifetime_steps(first.rows[kept_iteration - 1]), "state-log rows lost for finished iterations"
    assert episode_gaps(state_log.rows) == []
    chaos_report.checked(f"state log: {through_kept} rows for iterations 1..{kept_iteration} = env steps sampled; "
                         f"{len(state_log.rows) - through_kept} rows of the killed iteration; episodes and steps "
                         f"without gaps ({state_log.torn_rows} torn row(s) skipped)")

    stop_at = kept_iteration + 2
    restore = subprocess.run([PYTHON, "ppo_train.py", *common, "--restore", "--stop_iteration", str(stop_at), "-v", "0"],
                             cwd=REPO, env=env_vars(), capture_output=True, text=True, timeout=600)
    chaos_report.did(f"ppo_train.py -n kill --restore --stop_iteration {stop_at}: exit {restore.returncode}")
    assert restore.returncode == 0, restore.stdout[-3000:] + restore.stderr[-3000:]
    assert restored_from(restore.stdout) == newest_path, restore.stdout[-2000:]
    chaos_report.checked(f"--restore used the newest complete checkpoint ({newest_path.name}, iteration {newest_iteration})")

    _, second = result_logs(folder)
    assert iterations(second) == list(range(kept_iteration + 1, stop_at + 1))
    kept_row = first.rows[kept_iteration - 1]
    assert lifetime_steps(second.rows[0]) == lifetime_steps(kept_row) + iteration_steps(second.rows[0])
    history = [r for r in first.rows if r["training_iteration"] <= kept_iteration] + second.rows
    assert [r["training_iteration"] for r in history] == list(range(1, stop_at + 1))
    assert all(lifetime_steps(b) == lifetime_steps(a) + iteration_steps(b) for a, b in zip(history, history[1:], strict=False))
    redone = sorted(set(reported) & set(iterations(second)))
    assert redone == [], f"iterations reported twice in result.json: {redone}"
    chaos_report.checked(f"result.json: iterations 1..{stop_at} each once over train_1 + train_2; env steps "
                         f"{lifetime_steps(kept_row)} -> {lifetime_steps(second.rows[0])} continue without gap")

    client = MlflowClient(mlflow_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1, f"{len(runs)} MLflow runs: the restore must log into the killed run"
    history_steps = [m.step for m in client.get_metric_history(runs[0].info.run_id, "training_iteration")]
    assert sorted(history_steps) == list(range(1, stop_at + 1)), f"MLflow steps {sorted(history_steps)}"
    lifetime = {m.step: m.value for m in client.get_metric_history(runs[0].info.run_id, "num_env_steps_sampled_lifetime")}
    assert [lifetime[s] for s in sorted(lifetime)] == [lifetime_steps(r) for r in history]
    chaos_report.checked(f"MLflow: one run, training_iteration logged once at each step 1..{stop_at}, "
                         "env-step counter matches result.json")
