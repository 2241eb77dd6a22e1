"""Tune callback that logs a training run to MLflow without losing a parameter or the training run.

- Params: the resolved config flattened to dotted keys, batched (100 per call), values cut
  to the connected server's limit with a visible marker (a server that refuses a length
  makes it retry shorter: 6000 -> 500 -> 250), long or odd keys renamed deterministically.
  The full config is the artifact `config/resolved_config.yaml`.
- Metrics: every numeric entry of each Tune result at step = training_iteration, plus
  `throughput/env_steps_per_s`, in batches.
- Resume: the MLflow run id is kept in `<run_folder>/mlflow_run_id`; a later training run
  in the same folder logs into that run.
- Faults: an unreachable server is a warning; metrics are kept and sent when it is back.
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

import yaml
from ray.air.integrations.mlflow import MLflowLoggerCallback

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
# Metrics kept while the server is away (~50 per iteration for PPO: hours of training).
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
    """What this callback knows about the MLflow run of one trial."""

    index: int
    trial_name: str
    run_id: str | None = None
    resumed: bool = False
    setup_done: bool = False
    pending_metrics: list[Metric] = field(default_factory=list)
    dropped_metrics: int = 0


class CustomMlflowCallback(MLflowLoggerCallback):
    """Ray Tune's MLflow logger, made complete: flattened+batched params, resume, fault tolerance.

    tracking_uri: http(s) server, sqlite:///file.db, or a folder (a SQLite store in it).
    run_folder: results/<NAME>/; keeps the run id so a restore logs into the same run.
    resolved_config: logged as params and as config/resolved_config.yaml (default: trial.config).
    log_checkpoints: upload the final checkpoint at the end of the trial.
    state_log_dir: uploaded (under state_log/) at the end of the trial when it exists.
    retry_interval_s: after a failed request the server is left alone this long.
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
        self.target: TrackingTarget = resolve_tracking_uri(tracking_uri)
        super().__init__(
            tracking_uri=self.target.tracking_uri, experiment_name=experiment_name, tags=dict(tags or {})
        )
        self.run_folder = Path(run_folder)
        self.resolved_config = dict(resolved_config) if resolved_config is not None else None
        self.command_line = command_line
        self.run_name = run_name
        self.log_checkpoints = log_checkpoints
        self.state_log_dir = Path(state_log_dir) if state_log_dir is not None else None
        self.retry_interval_s = float(retry_interval_s)
        self.value_limit = VALUE_LENGTH_LADDER[0]
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None
        self._retry_at = 0.0  # time.monotonic() before which the server is left alone
        self._server_down = False
        self._runs: dict[Trial, _TrialRun] = {}

    # ----------------------------------------------------------------- Tune hooks
    def setup(self, *args: Any, **kwargs: Any) -> None:
        """Called once by Tune before the first trial: connect (a down server only warns)."""
        for name, value in _HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        self.tags = dict(self.tags or {})
        self._guarded("connecting", self._ensure_experiment)

    def log_trial_start(self, trial: Trial) -> None:
        """Create (or find again, after a restore) the trial's MLflow run and log its config."""
        if trial not in self._runs:
            self._runs[trial] = _TrialRun(index=len(self._runs), trial_name=str(trial))
        self._guarded("starting the run", self._ensure_run_ready, self._runs[trial], trial)

    def log_trial_result(self, iteration: int, trial: Trial, result: dict) -> None:
        """Queue this iteration's metrics at step = training_iteration and send what is queued."""
        state = self._runs.get(trial)
        if state is None:
            self.log_trial_start(trial)
            state = self._runs[trial]
        step = int(result.get("training_iteration", iteration))
        self._queue_metrics(state, metrics_from_result(result), step)
        self._guarded("logging metrics", self._sync, state, trial)

    def log_trial_end(self, trial: Trial, failed: bool = False) -> None:
        """Send what is left, the state log and (if asked) the final checkpoint; close the run."""
        state = self._runs.get(trial)
        if state is None:
            return
        self._retry_at = 0.0  # last chance: try even inside a retry window
        ok = self._guarded("finishing the run", self._finish, state, trial, failed)
        if not ok:
            logger.warning(
                "MLflow: run of trial %s not finalised (%d metrics unsent, end-of-run artifacts not uploaded); "
                "the run folder %s has everything",
                state.trial_name,
                len(state.pending_metrics),
                self.run_folder,
            )

    # ----------------------------------------------------------------- steps
    def _ensure_experiment(self) -> str:
        if self._experiment_id is not None:
            return self._experiment_id
        from mlflow.exceptions import MlflowException

        client = self._get_client()
        experiment = self._call(client.get_experiment_by_name, self.experiment_name)
        if experiment is None:
            try:
                self._experiment_id = self._call(
                    client.create_experiment, self.experiment_name, artifact_location=self.target.artifact_location
                )
            except MlflowException as error:
                if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
                self._experiment_id = self._call(client.get_experiment_by_name, self.experiment_name).experiment_id
        else:
            if experiment.lifecycle_stage == "deleted":
                logger.warning("MLflow: experiment '%s' was deleted; restoring it", self.experiment_name)
                self._call(client.restore_experiment, experiment.experiment_id)
            self._experiment_id = experiment.experiment_id
        return self._experiment_id

    def _ensure_run_ready(self, state: _TrialRun, trial: Trial) -> None:
        if state.run_id is None:
            self._open_run(state, trial)
        if not state.setup_done:
            self._log_run_setup(state, trial)
            state.setup_done = True

    def _open_run(self, state: _TrialRun, trial: Trial) -> None:
        from mlflow.exceptions import MlflowException

        client = self._get_client()
        experiment_id = self._ensure_experiment()
        id_file = self._run_id_file(state)
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
                    state.run_id, state.resumed = old_id, True
                    logger.info("MLflow: resuming run %s", old_id)
                    return
        tags = {
            **{str(k): str(v) for k, v in self.tags.items()},
            "trial_name": state.trial_name,
            "run_folder": str(self.run_folder.resolve()),
        }
        if self.command_line:
            tags["command_line"] = truncate_value(self.command_line, MAX_TAG_LENGTH)
        run = self._call(
            client.create_run, experiment_id, run_name=self.run_name or state.trial_name, tags=tags
        )
        state.run_id = run.info.run_id
        self.run_folder.mkdir(parents=True, exist_ok=True)
        id_file.write_text(state.run_id + "\n")
        (self.run_folder / TRACKING_URI_FILE).write_text(uri_without_credentials(self.target.tracking_uri) + "\n")
        logger.info("MLflow: logging to run %s at %s", state.run_id, uri_without_credentials(self.target.tracking_uri))

    def _log_run_setup(self, state: _TrialRun, trial: Trial) -> None:
        config = self.resolved_config if self.resolved_config is not None else dict(trial.config)
        params, renamed = mlflow_params(config)
        client = self._get_client()
        if state.resumed:
            params = self._params_new_on_resume(state, params)
            prefix = f"config/resumed_{datetime.now():%Y%m%d-%H%M%S}"
            config_path, command_path = f"{prefix}/resolved_config.yaml", f"{prefix}/command_line.txt"
        else:
            config_path, command_path = CONFIG_ARTIFACT, COMMAND_LINE_ARTIFACT
        # Artifacts first: whatever happens to the params, the full config is stored.
        self._call(client.log_text, state.run_id, config_to_yaml(config), config_path)
        if self.command_line:
            self._call(client.log_text, state.run_id, self.command_line + "\n", command_path)
        if renamed and not state.resumed:
            self._call(client.log_text, state.run_id, yaml.safe_dump(renamed, sort_keys=True), RENAMED_KEYS_ARTIFACT)
        self._log_params(state.run_id, params)

    def _params_new_on_resume(self, state: _TrialRun, params: dict[str, str]) -> dict[str, str]:
        # MLflow refuses to change a logged param; on resume only new keys are logged.
        logged = self._call(self._get_client().get_run, state.run_id).data.params
        changed = [k for k, v in params.items() if k in logged and logged[k] != truncate_value(v, len(logged[k]))]
        if changed:
            logger.warning(
                "MLflow: %d params differ from the resumed run (e.g. '%s'); MLflow keeps the first values, "
                "the new config is logged under config/resumed_*/",
                len(changed),
                changed[0],
            )
        return {k: v for k, v in params.items() if k not in logged}

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
        overflow = len(state.pending_metrics) - MAX_PENDING_METRICS
        if overflow > 0:
            del state.pending_metrics[:overflow]
            state.dropped_metrics += overflow

    def _sync(self, state: _TrialRun, trial: Trial) -> None:
        self._ensure_run_ready(state, trial)
        self._flush_metrics(state)

    def _flush_metrics(self, state: _TrialRun) -> None:
        client = self._get_client()
        backlog = len(state.pending_metrics)
        while state.pending_metrics:
            chunk = state.pending_metrics[:MAX_METRICS_PER_BATCH]
            self._call(client.log_batch, state.run_id, metrics=chunk)
            del state.pending_metrics[: len(chunk)]
        if state.dropped_metrics:
            logger.warning("MLflow: %d oldest metrics were dropped while the server was away", state.dropped_metrics)
            state.dropped_metrics = 0
        if backlog > MAX_METRICS_PER_BATCH:
            logger.info("MLflow: sent %d queued metrics", backlog)

    def _finish(self, state: _TrialRun, trial: Trial, failed: bool) -> None:
        self._sync(state, trial)
        client = self._get_client()
        if self.state_log_dir is not None and self.state_log_dir.is_dir():
            self._call(client.log_artifacts, state.run_id, str(self.state_log_dir), "state_log")
        if self.log_checkpoints:
            checkpoint = getattr(trial, "checkpoint", None)
            path = Path(checkpoint.path) if checkpoint is not None else None
            if path is not None and path.is_dir():
                self._call(client.log_artifacts, state.run_id, str(path), "checkpoint")
            else:
                logger.warning("MLflow: no local checkpoint of trial %s to upload", state.trial_name)
        self._call(client.set_terminated, state.run_id, status="FAILED" if failed else "FINISHED")

    # ----------------------------------------------------------------- plumbing
    def _run_id_file(self, state: _TrialRun) -> Path:
        # One run per run folder; extra trials (a sweep) get numbered files.
        suffix = "" if state.index == 0 else f".{state.index}"
        return self.run_folder / f"{RUN_ID_FILE}{suffix}"

    def _get_client(self) -> MlflowClient:
        if self._client is None:
            from mlflow import MlflowClient

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
                uri_without_credentials(self.target.tracking_uri),
                _first_line(error),
                self.retry_interval_s,
            )

    def _mark_up(self) -> None:
        if self._server_down:
            self._server_down = False
            logger.warning("MLflow: tracking server %s reachable again", uri_without_credentials(self.target.tracking_uri))

    def _guarded(self, what: str, function: Callable[..., Any], *args: Any) -> bool:
        """Run one step; never let MLflow trouble reach Tune. True when it completed."""
        try:
            function(*args)
            return True
        except _ServerUnavailable:
            return False
        except Exception as error:  # noqa: BLE001 - a logging fault must not end training
            logger.warning("MLflow: failed %s: %s", what, _first_line(error))
            return False

    def __getstate__(self) -> dict[str, Any]:
        # Tune may pickle callbacks with the experiment state; a live client does not pickle.
        state = self.__dict__.copy()
        state["_client"] = None
        return state


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

