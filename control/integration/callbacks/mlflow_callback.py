"""Tune callback that logs a training run to MLflow without losing a parameter, a metric or the training run.

- Params: the resolved config flattened to dotted keys, batched (100 per call), values cut
  to the connected server's limit with a visible marker (a server that refuses a length
  makes it retry shorter: 6000 -> 500 -> 250), long or odd keys renamed deterministically.
  The full config is the artifact `config/resolved_config.yaml`.
- Metrics: every numeric entry of each Tune result at step = training_iteration, plus
  `throughput/env_steps_per_s`, in batches.
- Resume: the MLflow run id is kept in `<run_folder>/mlflow_run_id`; a later training run
  in the same folder logs into that run.
- Faults: an unreachable server is a warning; metrics are kept and sent when it is back (past
  MAX_PENDING_METRICS they move to the backlog file at once, with a warning). An artifact store
  that refuses uploads is a warning; params and metrics still go. Whatever is unsent at the end
  is written to `<run_folder>/mlflow_backlog.jsonl`, sent by the next start in the same folder
  or by `python -m control.integration.mlflow_sync`; never dropped.
- Credentials: a `user:password@` in the tracking URI moves to MLFLOW_TRACKING_USERNAME /
  MLFLOW_TRACKING_PASSWORD (what MLflow's client reads); the callback, its pickled state (Tune
  keeps callbacks in its experiment state) and every file or tag it writes hold none.
"""
from __future__ import annotations

import logging
import numbers
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlparse

import yaml
from ray.air.integrations.mlflow import MLflowLoggerCallback

from control.integration import mlflow_backlog
from control.integration.mlflow_uri import (
    TrackingTarget,
    prepare_local_store,
    resolve_tracking_uri,
    uri_without_credentials,
)
from control.integration.param_flatten import (
    VALUE_LENGTH_LADDER,
    batches,
    mlflow_params,
    next_value_limit,
    sanitize_key,
    truncate_value,
)
from control.redact import redact_mapping, redact_text, redact_url

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Metric
    from ray.tune.experiment import Trial

logger = logging.getLogger(__name__)
T = TypeVar("T")

RUN_ID_FILE = "mlflow_run_id"
TRACKING_URI_FILE = "mlflow_tracking_uri"
CONFIG_ARTIFACT = "config/resolved_config.yaml"
COMMAND_LINE_ARTIFACT = "config/command_line.txt"
RENAMED_KEYS_ARTIFACT = "config/renamed_param_keys.yaml"
MAX_METRICS_PER_BATCH = 1000
# Metrics kept in memory while the server is away (~50 per iteration for PPO: hours of training);
# beyond that they go to the backlog file, so memory stays bounded and nothing is dropped.
MAX_PENDING_METRICS = 200_000
MAX_TAG_LENGTH = 5000
# Tune bookkeeping that is numeric but not a measurement of training.
_SKIPPED_METRICS = {"pid", "timestamp", "done"}
# A training driver must not hang on a dead server: mlflow's defaults retry 7 times with
# exponential backoff and a 120 s timeout per request (minutes per call). Users may override.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}


class _ServerUnavailable(Exception):
    """The tracking server could not be reached (already warned about)."""


@dataclass
class _TrialRun:
    """What this callback knows about the MLflow run of one trial, and what it has not sent yet."""

    index: int
    trial_name: str
    config: dict[str, Any]
    run_id: str | None = None
    params: dict[str, str] | None = None  # None once sent
    renamed_keys: dict[str, str] = field(default_factory=dict)
    setup_queued: bool = False
    pending_metrics: list[Metric] = field(default_factory=list)
    pending_artifacts: list[dict[str, Any]] = field(default_factory=list)  # mlflow_backlog text/dir entries
    status: str | None = None  # final status not yet set on the server


class CustomMlflowCallback(MLflowLoggerCallback):
    """Ray Tune's MLflow logger, made complete: flattened+batched params, resume, fault tolerance, a backlog.

    tracking_uri: http(s) server, sqlite:///file.db, or a folder (a SQLite store in it).
    run_folder: results/<NAME>/; keeps the run id (a restore logs into the same run) and the backlog.
    resolved_config: logged as params and as config/resolved_config.yaml (default: trial.config).
    log_checkpoints: upload the final checkpoint at the end of the trial.
    state_log_dir: uploaded (under state_log/) at the end of the trial when it exists.
    retry_interval_s: after a failed request the server (or the artifact store) is left alone this long.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str,
        run_folder: Path,
        resolved_config: Mapping[str, Any] | None = None,
        command_line: str = "",
        run_name: str | None = None,
        log_checkpoints: bool = False,
        state_log_dir: Path | None = None,
        tags: Mapping[str, str] | None = None,
        retry_interval_s: float = 30.0,
    ) -> None:
        self.target: TrackingTarget = _credentials_to_environment(resolve_tracking_uri(tracking_uri))
        super().__init__(
            tracking_uri=self.target.tracking_uri, experiment_name=experiment_name,
            tags=redact_mapping({str(k): str(v) for k, v in (tags or {}).items()}),
        )  # fmt: skip
        self.run_folder = Path(run_folder)
        # The CLI passes a redacted config and command line; redacted again here, to be safe.
        self.resolved_config = redact_mapping(dict(resolved_config)) if resolved_config is not None else None
        self.command_line = redact_text(command_line)
        self.run_name = run_name
        self.log_checkpoints = log_checkpoints
        self.state_log_dir = Path(state_log_dir) if state_log_dir is not None else None
        self.retry_interval_s = float(retry_interval_s)
        self.value_limit = VALUE_LENGTH_LADDER[0]
        self._client: MlflowClient | None = None
        self._experiment_ids: dict[str, str] = {}
        self._retry_at = 0.0  # time.monotonic() before which the server is left alone
        self._artifact_retry_at = 0.0  # the same for the artifact store
        self._server_down = False
        self._artifacts_refused = False
        self._backlog_refused = False  # the server refused an entry of the backlog file: not retried this session
        self._runs: dict[Trial, _TrialRun] = {}

    @property
    def safe_uri(self) -> str:
        """The tracking URI as it may be printed or written (no credentials)."""
        return redact_url(uri_without_credentials(self.target.tracking_uri))

    # ----------------------------------------------------------------- Tune hooks
    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Called once by Tune before the first trial: connect and send an earlier backlog (a down server only warns)."""
        _set_http_defaults()
        self.tags = dict(self.tags or {})
        if self._guarded("connecting", self._experiment_id, self.experiment_name):
            self._guarded("sending the backlog", self.send_backlog)

    def log_trial_start(self, trial: Trial) -> None:
        """Create (or find again, after a restore) the trial's MLflow run and log its config."""
        state = self._state_of(trial)
        self._guarded("starting the run", self._sync, state)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        """Queue this iteration's metrics at step = training_iteration and send what is queued."""
        state = self._state_of(trial)
        step = int(result.get("training_iteration", iteration))
        self._queue_metrics(state, metrics_from_result(result), step)
        self._guarded("logging metrics", self._sync, state)

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        """Send what is left, the state log and (if asked) the final checkpoint; close the run; backlog the rest."""
        state = self._runs.get(trial)
        if state is None:
            return
        self._queue_end_artifacts(state, trial)
        state.status = "FAILED" if failed else "FINISHED"
        self._retry_at = self._artifact_retry_at = 0.0  # last chance: try even inside a retry window
        self._guarded("finishing the run", self._finish, state)
        left = self._take_unsent(state)
        if left and self._write_backlog(left):
            logger.warning(
                "MLflow: run of trial %s not finalised: %s kept in %s; sent by the next --restore with "
                "--mlflow_uri, or now with: make -C control mlflow_sync NAME=%s",
                state.trial_name, mlflow_backlog.describe(left), mlflow_backlog.backlog_path(self.run_folder),
                self.run_folder.name,
            )  # fmt: skip

    # ----------------------------------------------------------------- the backlog
    def send_backlog(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Send `<run_folder>/mlflow_backlog.jsonl`; what is sent leaves the file. Returns (sent, left)."""
        entries = mlflow_backlog.read_entries(self.run_folder)
        if not entries:
            return [], []
        sent: list[dict[str, Any]] = []
        left: list[dict[str, Any]] = []
        run_ids: dict[int, str | None] = {}
        try:
            for entry in entries:
                index = int(entry.get("run_index", 0))
                if index not in run_ids:
                    run_ids[index] = self._backlog_run_id(index, entries)
                run_id = entry.get("run_id") or run_ids[index]
                if run_id is None or not self._send_entry(run_id, entry):
                    left.append(entry)
                else:
                    sent.append(entry)
        except BaseException:  # the server went away, or refused an entry: the rest stays for next time
            left.extend(entries[len(sent) + len(left):])  # each entry before it is in sent or left
            raise
        finally:
            if sent:
                mlflow_backlog.replace_entries(self.run_folder, left)
                logger.warning("MLflow: sent the backlog of %s (%s)%s", self.run_folder.name,
                               mlflow_backlog.describe(sent),
                               f"; still kept: {mlflow_backlog.describe(left)}" if left else "")
        return sent, left

    def _backlog_run_id(self, index: int, entries: list[dict[str, Any]]) -> str | None:
        """The run of trial `index`: from its run id file, else created as its `run` entry says."""
        id_file = self._run_id_file(index)
        if id_file.is_file():
            return id_file.read_text().strip()
        spec = next((e for e in entries if e.get("type") == "run" and int(e.get("run_index", 0)) == index), None)
        if spec is None:
            return None
        experiment_id = self._experiment_id(spec["experiment"])
        run = self._call(self._get_client().create_run, experiment_id, run_name=spec.get("run_name"),
                         tags=dict(spec.get("tags") or {}))
        self._remember_run(index, run.info.run_id)
        return run.info.run_id

    def _send_entry(self, run_id: str, entry: dict[str, Any]) -> bool:
        """Send one backlog entry to `run_id`; False when it must stay (an artifact the store refuses)."""
        from mlflow.entities import Metric

        kind = entry["type"]
        if kind == "params":
            self._log_params(run_id, self._params_not_logged(run_id, entry["params"]))
        elif kind == "metrics":
            self._log_metrics(run_id, [Metric(str(k), float(v), int(t), int(s)) for k, v, t, s in entry["metrics"]])
        elif kind in ("text", "dir"):
            return self._upload(run_id, entry)
        elif kind == "status":
            self._call(self._get_client().set_terminated, run_id, status=entry["status"])
        return True

    def _write_backlog(self, entries: list[dict[str, Any]]) -> bool:
        """Append entries to the backlog file; a failure (a full disk) is an error-level log line."""
        try:
            mlflow_backlog.append_entries(self.run_folder, entries)
            (self.run_folder / TRACKING_URI_FILE).write_text(self.safe_uri + "\n")
        except OSError as error:
            logger.error("MLflow: could not write %s (%s): %s are lost", mlflow_backlog.backlog_path(self.run_folder),
                         error, mlflow_backlog.describe(entries))
            return False
        return True

    def _take_unsent(self, state: _TrialRun) -> list[dict[str, Any]]:
        """Everything of `state` not sent yet, as backlog entries (and cleared from `state`)."""
        entries = self._run_entry(state)
        if state.run_id is None:  # the run never opened: its config artifacts were not queued yet
            self._queue_setup_artifacts(state, resumed=self._run_id_file(state.index).is_file())
        base = {"run_index": state.index, "run_id": state.run_id}
        if state.params:
            entries.append({**base, "type": "params", "params": state.params})
        entries.extend(self._metric_entries(state))
        entries.extend({**job, **base} for job in state.pending_artifacts)
        if state.status:
            entries.append({**base, "type": "status", "status": state.status})
        state.params, state.pending_artifacts, state.status = None, [], None
        return entries

    def _run_entry(self, state: _TrialRun) -> list[dict[str, Any]]:
        """[the `run` entry that lets the backlog create this trial's run] while it has none, else []."""
        if state.run_id is not None or self._run_id_file(state.index).is_file():
            return []
        return [{"type": "run", "run_index": state.index, "experiment": self.experiment_name,
                 "run_name": self.run_name or state.trial_name, "tags": self._run_tags(state)}]

    def _metric_entries(self, state: _TrialRun) -> list[dict[str, Any]]:
        entries = []
        metrics = state.pending_metrics
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            chunk = metrics[start:start + MAX_METRICS_PER_BATCH]
            entries.append({"type": "metrics", "run_index": state.index, "run_id": state.run_id,
                            "metrics": [[m.key, m.value, m.timestamp, m.step] for m in chunk]})
        state.pending_metrics = []
        return entries

    # ----------------------------------------------------------------- steps
    def _state_of(self, trial: Trial) -> _TrialRun:
        if trial not in self._runs:
            config = self.resolved_config if self.resolved_config is not None else redact_mapping(dict(trial.config))
            params, renamed = mlflow_params(config)
            self._runs[trial] = _TrialRun(index=len(self._runs), trial_name=str(trial), config=config,
                                          params=params, renamed_keys=renamed)
        return self._runs[trial]

    def _sync(self, state: _TrialRun) -> None:
        """Send, in this order: an earlier backlog, the run, params, metrics, artifacts."""
        if mlflow_backlog.backlog_path(self.run_folder).is_file() and not self._backlog_refused:
            try:
                self.send_backlog()
            except _ServerUnavailable:
                raise
            except Exception as error:  # noqa: BLE001 - a backlog the server refuses must not hold back this run
                self._backlog_refused = True
                logger.warning("MLflow: the server refused the backlog %s (%s); it is kept for make -C control "
                               "mlflow_sync NAME=%s, and this run logs on", mlflow_backlog.backlog_path(self.run_folder),
                               redact_text(_first_line(error)), self.run_folder.name)
        if state.run_id is None:
            self._open_run(state)
        if state.params is not None:
            self._log_params(state.run_id, state.params)
            state.params = None
        self._flush_metrics(state)
        self._send_artifacts(state)

    def _finish(self, state: _TrialRun) -> None:
        self._sync(state)
        self._call(self._get_client().set_terminated, state.run_id, status=state.status)
        state.status = None

    def _experiment_id(self, name: str) -> str:
        if name in self._experiment_ids:
            return self._experiment_ids[name]
        from mlflow.exceptions import MlflowException

        client = self._get_client()
        experiment = self._call(client.get_experiment_by_name, name)
        if experiment is None:
            try:
                experiment_id = self._call(client.create_experiment, name, artifact_location=self.target.artifact_location)
            except MlflowException as error:
                if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment_id = self._call(client.get_experiment_by_name, name).experiment_id
        else:
            if experiment.lifecycle_stage == "deleted":
                logger.warning("MLflow: experiment '%s' was deleted; restoring it", name)
                self._call(client.restore_experiment, experiment.experiment_id)
            experiment_id = experiment.experiment_id
        self._experiment_ids[name] = experiment_id
        return experiment_id

    def _open_run(self, state: _TrialRun) -> None:
        """Resume the run named by the run id file, or create one; then queue the config artifacts."""
        from mlflow.exceptions import MlflowException

        client = self._get_client()
        experiment_id = self._experiment_id(self.experiment_name)
        id_file = self._run_id_file(state.index)
        if id_file.is_file():
            old_id = id_file.read_text().strip()
            try:
                run = self._call(client.get_run, old_id)
            except MlflowException as error:
                logger.warning("MLflow: run %s from %s not found (%s); starting a new run", old_id, id_file, error)
            else:
                if run.info.lifecycle_stage == "deleted":
                    logger.warning("MLflow: run %s from %s was deleted; starting a new run", old_id, id_file)
                else:
                    self._call(client.update_run, old_id, status="RUNNING")
                    state.run_id = old_id
                    logged = run.data.params
                    if state.params is not None:
                        state.params = self._params_new_on_resume(logged, state.params)
                    # A run created from a backlog has no config yet: this config is its first.
                    self._queue_setup_artifacts(state, resumed=bool(logged))
                    logger.info("MLflow: resuming run %s", old_id)
                    return
        run = self._call(client.create_run, experiment_id, run_name=self.run_name or state.trial_name,
                         tags=self._run_tags(state))
        self._remember_run(state.index, run.info.run_id)
        state.run_id = run.info.run_id
        self._queue_setup_artifacts(state, resumed=False)
        logger.info("MLflow: logging to run %s at %s", state.run_id, self.safe_uri)

    def _run_tags(self, state: _TrialRun) -> dict[str, str]:
        tags = {**{str(k): str(v) for k, v in self.tags.items()}, "trial_name": state.trial_name,
                "run_folder": str(self.run_folder.resolve())}
        if self.command_line:
            tags["command_line"] = truncate_value(redact_text(self.command_line), MAX_TAG_LENGTH)
        return tags

    def _remember_run(self, index: int, run_id: str) -> None:
        self.run_folder.mkdir(parents=True, exist_ok=True)
        self._run_id_file(index).write_text(run_id + "\n")
        (self.run_folder / TRACKING_URI_FILE).write_text(self.safe_uri + "\n")

    def _queue_setup_artifacts(self, state: _TrialRun, resumed: bool) -> None:
        """The config, the command line and the renamed keys, as artifacts to upload (once per trial)."""
        if state.setup_queued:
            return
        state.setup_queued = True
        if resumed:
            prefix = f"config/resumed_{datetime.now():%Y%m%d-%H%M%S}"
            config_path, command_path = f"{prefix}/resolved_config.yaml", f"{prefix}/command_line.txt"
        else:
            config_path, command_path = CONFIG_ARTIFACT, COMMAND_LINE_ARTIFACT
        jobs = [{"type": "text", "artifact_file": config_path, "text": config_to_yaml(state.config)}]
        if self.command_line:
            jobs.append({"type": "text", "artifact_file": command_path, "text": redact_text(self.command_line) + "\n"})
        if state.renamed_keys and not resumed:
            jobs.append({"type": "text", "artifact_file": RENAMED_KEYS_ARTIFACT,
                         "text": yaml.safe_dump(state.renamed_keys, sort_keys=True)})
        state.pending_artifacts[:0] = jobs  # before anything queued at the end of the trial

    def _queue_end_artifacts(self, state: _TrialRun, trial: Trial) -> None:
        if self.state_log_dir is not None and self.state_log_dir.is_dir():
            state.pending_artifacts.append({"type": "dir", "local_dir": str(self.state_log_dir.resolve()),
                                            "artifact_path": "state_log"})
        if self.log_checkpoints:
            checkpoint = getattr(trial, "checkpoint", None)
            path = Path(checkpoint.path) if checkpoint is not None else None
            if path is not None and path.is_dir():
                state.pending_artifacts.append({"type": "dir", "local_dir": str(path.resolve()),
                                                "artifact_path": "checkpoint"})
            else:
                logger.warning("MLflow: no local checkpoint of trial %s to upload", state.trial_name)

    def _params_new_on_resume(self, logged: Mapping[str, str], params: dict[str, str]) -> dict[str, str]:
        # MLflow refuses to change a logged param; on resume only new keys are logged.
        changed = [k for k, v in params.items() if k in logged and logged[k] != truncate_value(v, len(logged[k]))]
        if changed:
            logger.warning(
                "MLflow: %d params differ from the resumed run (e.g. '%s'); MLflow keeps the first values, "
                "the new config is logged under config/resumed_*/",
                len(changed),
                changed[0],
            )
        return {k: v for k, v in params.items() if k not in logged}

    def _params_not_logged(self, run_id: str, params: dict[str, str]) -> dict[str, str]:
        logged = self._call(self._get_client().get_run, run_id).data.params
        return self._params_new_on_resume(logged, params) if logged else params

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param
        from mlflow.exceptions import RestException

        client = self._get_client()
        for batch in batches(sorted(params.items())):
            while True:
                try:
                    self._call(
                        client.log_batch, run_id, params=[Param(k, truncate_value(v, self.value_limit)) for k, v in batch]
                    )
                    break
                except RestException as error:
                    if not is_length_rejection(error):
                        logger.warning("MLflow: server refused %d params (%s); skipped", len(batch), _first_line(error))
                        break
                    shorter = next_value_limit(self.value_limit, str(error))
                    if shorter is None:
                        logger.warning(
                            "MLflow: server refuses params even at %d characters (%s); params skipped, "
                            "the config artifact has them all",
                            self.value_limit,
                            _first_line(error),
                        )
                        return
                    logger.warning(
                        "MLflow: server refused a %d-character param value; retrying with values cut to %d",
                        self.value_limit,
                        shorter,
                    )
                    self.value_limit = shorter

    def _queue_metrics(self, state: _TrialRun, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp_ms = int(time.time() * 1000)
        state.pending_metrics.extend(Metric(k, v, timestamp_ms, step) for k, v in metrics.items())
        if len(state.pending_metrics) > MAX_PENDING_METRICS:
            # Memory stays bounded: the queue moves to disk now (and is sent first when the server is back).
            entries = self._run_entry(state) + self._metric_entries(state)
            if self._write_backlog(entries):
                logger.warning("MLflow: server away for long: %s moved to %s; sent when it answers again or by "
                               "make -C control mlflow_sync NAME=%s", mlflow_backlog.describe(entries),
                               mlflow_backlog.backlog_path(self.run_folder), self.run_folder.name)

    def _flush_metrics(self, state: _TrialRun) -> None:
        backlog = len(state.pending_metrics)
        self._log_metrics(state.run_id, state.pending_metrics)  # sent ones leave the list
        if backlog > MAX_METRICS_PER_BATCH:
            logger.info("MLflow: sent %d queued metrics", backlog)

    def _log_metrics(self, run_id: str, metrics: list[Metric]) -> None:
        """Send `metrics` in batches; each sent batch is removed from the list (what is left stays queued)."""
        client = self._get_client()
        while metrics:
            chunk = metrics[:MAX_METRICS_PER_BATCH]
            self._call(client.log_batch, run_id, metrics=chunk)
            del metrics[: len(chunk)]

    def _send_artifacts(self, state: _TrialRun) -> None:
        """Upload the queued artifacts in order; the first refusal leaves it and the rest queued."""
        while state.pending_artifacts:
            if not self._upload(state.run_id, state.pending_artifacts[0]):
                return
            state.pending_artifacts.pop(0)

    def _upload(self, run_id: str, job: dict[str, Any]) -> bool:
        """One artifact upload; False (with a warning the first time) when the artifact store refuses it.

        Not through _call: a store that refuses uploads (wrong credentials, no permission) must not
        make params and metrics wait as if the tracking server were down.
        """
        now = time.monotonic()
        if now < self._artifact_retry_at or now < self._retry_at:
            return False
        client = self._get_client()
        try:
            if job["type"] == "text":
                client.log_text(run_id, job["text"], job["artifact_file"])
            elif Path(job["local_dir"]).is_dir():
                client.log_artifacts(run_id, job["local_dir"], job["artifact_path"])
            else:
                logger.warning("MLflow: %s no longer exists; its upload to %s/ is given up", job["local_dir"],
                               job["artifact_path"])
        except Exception as error:  # noqa: BLE001 - any store (S3, GCS, HTTP proxy) has its own errors
            self._artifact_retry_at = time.monotonic() + self.retry_interval_s
            if not self._artifacts_refused:
                self._artifacts_refused = True
                logger.warning(
                    "MLflow: the artifact store refused %s (%s); params and metrics are still logged, artifacts "
                    "are retried (at most every %.0f s) and what is refused at the end is kept in %s",
                    job.get("artifact_file") or job.get("artifact_path"), _first_line(error), self.retry_interval_s,
                    mlflow_backlog.backlog_path(self.run_folder),
                )  # fmt: skip
            return False
        if self._artifacts_refused:
            self._artifacts_refused = False
            logger.warning("MLflow: the artifact store accepts uploads again")
        return True

    # ----------------------------------------------------------------- plumbing
    def _run_id_file(self, index: int) -> Path:
        # One run per run folder; extra trials (a sweep) get numbered files.
        suffix = "" if index == 0 else f".{index}"
        return self.run_folder / f"{RUN_ID_FILE}{suffix}"

    def _get_client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

            _set_http_defaults()
            prepare_local_store(self.target)
            self._client = MlflowClient(tracking_uri=self.target.tracking_uri)
        return self._client

    def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One request to the tracking store; an unreachable server raises _ServerUnavailable."""
        from mlflow.exceptions import MlflowException, RestException

        if self.target.is_local:
            return function(*args, **kwargs)  # no server: every error is a real one
        if time.monotonic() < self._retry_at:
            raise _ServerUnavailable
        try:
            result = function(*args, **kwargs)
        except RestException as error:
            if error.get_http_status_code() < 500:
                self._mark_up()  # the server answered; the request itself was refused
                raise
            self._mark_down(error)
            raise _ServerUnavailable from error
        except (MlflowException, OSError) as error:
            # mlflow wraps connection refused, timeouts and proxy errors in MlflowException.
            self._mark_down(error)
            raise _ServerUnavailable from error
        self._mark_up()
        return result

    def _mark_down(self, error: BaseException) -> None:
        self._retry_at = time.monotonic() + self.retry_interval_s
        if not self._server_down:
            self._server_down = True
            logger.warning(
                "MLflow: tracking server %s unreachable (%s); training continues, metrics are kept and "
                "sent when it answers again (next try in %.0f s)",
                self.safe_uri,
                redact_text(_first_line(error)),
                self.retry_interval_s,
            )

    def _mark_up(self) -> None:
        if self._server_down:
            self._server_down = False
            logger.warning("MLflow: tracking server %s reachable again", self.safe_uri)

    def _guarded(self, what: str, function: Callable[..., Any], *args: Any) -> bool:
        """Run one step; never let MLflow trouble reach Tune. True when it completed."""
        try:
            function(*args)
            return True
        except _ServerUnavailable:
            return False
        except Exception as error:  # noqa: BLE001 - a logging fault must not end training
            logger.warning("MLflow: failed %s: %s", what, redact_text(_first_line(error)))
            return False

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks into its experiment state: no live client, and no credential
        # (they live in MLFLOW_TRACKING_USERNAME/PASSWORD, see _credentials_to_environment).
        state = self.__dict__.copy()
        state["_client"] = None
        safe_uri = self.safe_uri
        state["target"] = TrackingTarget(safe_uri, self.target.artifact_location)
        state["tracking_uri"] = safe_uri
        state["tracking_token"] = None
        state["command_line"] = redact_text(self.command_line)
        state["tags"] = redact_mapping(self.tags)
        # Ray's helper holds the mlflow module (plain pickle refuses it); none of our hooks use it.
        state["mlflow_util"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        from ray.air._internal.mlflow import _MLflowLoggerUtil

        self.mlflow_util = _MLflowLoggerUtil()


def _credentials_to_environment(target: TrackingTarget) -> TrackingTarget:
    """Move `user:password@` of an http(s) URI into the variables MLflow's client reads; the URI keeps no password.

    Variables the user set win (MLflow itself prefers them to the URI's userinfo). A lone
    token (`https://TOKEN@host`) stays in the live URI (MLflow has no variable for it) and is
    left out of everything written or pickled.
    """
    parsed = urlparse(target.tracking_uri)
    if parsed.scheme not in ("http", "https") or parsed.username is None or parsed.password is None:
        return target
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", unquote(parsed.username))
    os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", unquote(parsed.password))
    return TrackingTarget(uri_without_credentials(target.tracking_uri), target.artifact_location)


def _set_http_defaults() -> None:
    for name, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def metrics_from_result(result: Mapping[str, Any]) -> dict[str, float]:
    """Numeric entries of a Tune result, flattened with '/' and named as MLflow accepts."""
    metrics: dict[str, float] = {}
    for key, value in _flatten_result(result, ""):
        if key in _SKIPPED_METRICS or key.startswith("config/"):
            continue
        metrics[sanitize_key(key)] = value
    env_runners = result.get("env_runners")
    steps = env_runners.get("num_env_steps_sampled") if isinstance(env_runners, Mapping) else None
    seconds = result.get("time_this_iter_s")
    if _is_number(steps) and _is_number(seconds) and seconds > 0:
        metrics["throughput/env_steps_per_s"] = float(steps) / float(seconds)
    return metrics


def _flatten_result(value: Any, prefix: str) -> Iterable[tuple[str, float]]:
    if isinstance(value, Mapping):
        for key, child in value.items():
            yield from _flatten_result(child, f"{prefix}/{key}" if prefix else str(key))
    elif _is_number(value):
        yield prefix, float(value)


def _is_number(value: Any) -> bool:
    # numpy scalars register as numbers.Real; bools are flags, not measurements.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_length_rejection(error: BaseException) -> bool:
    """True when the server refused a param because its value was too long.

    Servers say "'Param value' exceeds the maximum length of 6000 characters" (MLflow 2/3,
    with truncation off) or "Param value '…' had length 600, which exceeded length limit
    of 500" (MLflow 1.x).
    """
    message = str(error).lower()
    return (
        getattr(error, "error_code", "") == "INVALID_PARAMETER_VALUE"
        and "length" in message
        and re.search(r"param(eter)?'?\s*value", message) is not None
    )


def config_to_yaml(config: Mapping[str, Any]) -> str:
    """The config as YAML (objects YAML cannot represent are written as their str())."""
    return yaml.safe_dump(_plain(config), sort_keys=False, default_flow_style=False, allow_unicode=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k) if not isinstance(k, (int, float, bool)) else k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _plain(value.tolist())
    return str(value)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]

