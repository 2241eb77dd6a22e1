"""Send a rollout's video, metrics and plots to the training run in MLflow (or a new run when there is none)."""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from control.errors import UserError
from control.redact import redact_text, redact_url

RUN_ID_FILE = "mlflow_run_id"  # written by the training MLflow callback into results/<NAME>/
FALLBACK_EXPERIMENT = "rollouts"
# Fail in seconds, not minutes, when the server is down (MLflow retries for ~2 minutes by default).
_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                  "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}


def _training_run_id(client: Any, run_folder: Path | None) -> str | None:
    """The training run's id from results/<NAME>/mlflow_run_id, when that run exists in this store."""
    if run_folder is None or not (run_folder / RUN_ID_FILE).is_file():
        return None
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    try:
        client.get_run(run_id)
    except Exception:  # noqa: BLE001 - another store, or the run was deleted: fall back to a new run
        return None
    return run_id


def upload_rollout(uri: str, run_folder: Path | None, out_dir: Path, aggregate: Mapping[str, Any],
                   run_name: str = "rollout") -> str:
    """Log every file of out_dir under artifacts rollouts/<out_dir name>/ and the aggregate as rollout/* metrics; returns the run id."""
    from control.integration.mlflow_uri import prepare_local_store, resolve_tracking_uri

    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)
    target = resolve_tracking_uri(uri)
    prepare_local_store(target)
    try:
        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient(tracking_uri=target.tracking_uri)
        run_id = _training_run_id(client, run_folder)
        if run_id is None:
            experiment = client.get_experiment_by_name(FALLBACK_EXPERIMENT)
            experiment_id = (experiment.experiment_id if experiment is not None else
                             client.create_experiment(FALLBACK_EXPERIMENT, artifact_location=target.artifact_location))
            run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
            client.set_terminated(run_id)
        client.log_artifacts(run_id, str(out_dir), artifact_path=f"rollouts/{out_dir.name}")
        now_ms = int(time.time() * 1000)
        metrics = [Metric(f"rollout/{k}", float(v), now_ms, 0) for k, v in aggregate.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if metrics:
            client.log_batch(run_id, metrics=metrics)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - one line for the user, whatever MLflow raised
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"rollout written to {out_dir}, but logging it to MLflow at {redact_url(uri)} failed: "
                        f"{redact_text(first)}") from None
    return run_id
