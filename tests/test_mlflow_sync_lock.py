"""make mlflow_sync never sends a backlog beside a training of the same run (it would send entries twice)."""
from __future__ import annotations

import json
import os

from control.integration import mlflow_sync
from control.integration.mlflow_backlog import BACKLOG_FILE
from control.training.run_lock import RunLock


def test_sync_of_a_run_that_is_training_is_a_one_line_refusal_and_keeps_the_backlog(tmp_path, capsys):
    folder = tmp_path / "results" / "run1"
    folder.mkdir(parents=True)
    backlog = folder / BACKLOG_FILE
    backlog.write_text(json.dumps({"type": "metrics", "step": 1, "metrics": {"a": 1.0}}) + "\n")
    before = backlog.read_text()
    with RunLock(folder):  # what ppo_train.py holds while it trains
        status = mlflow_sync.main(["-n", "run1", "--results_dir", str(tmp_path / "results"), "--mlflow_uri", "sqlite:///x.db"])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert len(err.splitlines()) == 1 and "is being trained by" in err and str(os.getpid()) in err, err
    assert backlog.read_text() == before
