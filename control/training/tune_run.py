"""One training run under Ray Tune: checkpoints, stop conditions, graceful Ctrl-C/SIGTERM, restore."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from control.errors import UserError
from control.redact import redact_mapping
from control.training.error_cause import find_disk_full, find_user_error
from control.training.stop import RunStopper, StopConditions
from control.training.stop_signal import StopSignal

logger = logging.getLogger(__name__)


@dataclass
class TrainOutcome:
    """What a finished run leaves behind."""

    run_folder: Path
    checkpoint: Path | None
    iteration: int | None
    timesteps: int | None
    stop_reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


class InterruptedBeforeTraining(Exception):
    """A stop signal arrived before the first iteration: there is nothing to checkpoint."""


class ConfigOnFirstResult(Callback):
    """Tune callback: write the run's config.yaml once this start has trained (so built and restored) once.

    A restore that fails to build, or to load its checkpoint, leaves the earlier config.yaml as it was.
    """

    def __init__(self, run_folder: Path, resolved_config: dict[str, Any]):
        self.run_folder = Path(run_folder)
        self.resolved_config = redact_mapping(resolved_config)  # Tune pickles its callbacks: no secrets in them
        self.written = False

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any) -> None:
        """Write config.yaml at the first result (the earlier one is kept as config.prev.yaml)."""
        if not self.written:
            from control.training.run_folder import write_config

            write_config(self.run_folder, self.resolved_config)
            self.written = True


class SignalAwareStopper(RunStopper):
    """RunStopper that also stops (with a final checkpoint) once a stop signal arrived."""

    def __init__(self, conditions: StopConditions, stop_signal: StopSignal):
        super().__init__(conditions)
        self.stop_signal = stop_signal

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """Stop on a condition or on a received signal."""
        if self.stop_signal.received is not None:
            self.reason = f"{self.stop_signal.received} received"
            return True
        return super().__call__(trial_id, result)


def next_experiment_name(run_folder: Path) -> str:
    """train_1 for the first Tune run of a folder, train_2 after one restore, ..."""
    taken = {p.name for p in run_folder.iterdir() if p.is_dir()} if run_folder.is_dir() else set()
    n = 1
    while f"train_{n}" in taken:
        n += 1
    return f"train_{n}"


def run_tune(algo_config: Any, *, run_folder: Path, stop: StopConditions, checkpoint_frequency: int,
             checkpoint_num_to_keep: int, tune_callbacks: list[Any] | None = None,
             verbose: int = 1, stop_signal: StopSignal | None = None) -> TrainOutcome:
    """Train `algo_config` (a PPOConfig) with Tune into run_folder/train_<n>/ until a stop condition.

    stop_signal: an installed StopSignal (the CLI installs one first thing); one is made here otherwise.
    """
    from ray import tune

    own_signal = stop_signal is None
    stop_signal = stop_signal or StopSignal()
    stopper = SignalAwareStopper(stop, stop_signal)
    run_config = tune.RunConfig(
        name=next_experiment_name(run_folder),
        storage_path=str(run_folder.resolve()),
        stop=stopper,
        callbacks=tune_callbacks or [],
        checkpoint_config=tune.CheckpointConfig(
            checkpoint_frequency=checkpoint_frequency,
            checkpoint_at_end=True,
            num_to_keep=checkpoint_num_to_keep,
        ),
        verbose=verbose,
    )
    tuner = tune.Tuner(algo_config.algo_class, param_space=algo_config, run_config=run_config)
    # Our handler replaces Tune's: Tune's own stops without a trial checkpoint.
    previous = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    if own_signal:
        stop_signal.install()
    quiet = OneLineLibraryErrors(run_folder) if verbose < 2 else None
    try:
        if quiet is not None:
            quiet.install()
        results = tuner.fit()
    finally:
        if quiet is not None:
            quiet.uninstall()
        if own_signal:
            stop_signal.uninstall()
        if previous is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
    result = results[0]
    if result.error is not None:
        found = find_user_error(result.error)  # the project's own error, wherever in Ray it was raised
        if found is not None:
            raise found from None
        disk_full = find_disk_full(result.error, run_folder)
        if disk_full is not None:
            raise disk_full from None
        raise UserError(f"training failed: {_first_line(result.error)} (full log under {result.path})")
    metrics = result.metrics or {}
    checkpoint = Path(result.checkpoint.path) if result.checkpoint is not None else None
    return TrainOutcome(
        run_folder=run_folder,
        checkpoint=checkpoint,
        iteration=metrics.get("training_iteration"),
        timesteps=metrics.get("num_env_steps_sampled_lifetime"),
        stop_reason=stopper.reason or "stopped",
        metrics=metrics,
    )


def _first_line(error: BaseException) -> str:
    """The last meaningful line of a (possibly remote) error: the cause a user needs to read."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[-1] if lines else type(error).__name__


class OneLineLibraryErrors(logging.Filter):
    """Ray/Tune's own error logs on the console as one line each; their tracebacks go to RUN/driver_errors.log.

    The CLI promises one line per error: a traceback Tune logs on the way (a failed experiment-state
    upload, a trial error) would bury it. The full text is kept, not dropped. `-v 2` shows it all.
    """

    LOG_FILENAME = "driver_errors.log"

    def __init__(self, run_folder: Path) -> None:
        super().__init__()
        self.log_path = Path(run_folder) / self.LOG_FILENAME
        self._handlers: list[logging.Handler] = []

    def install(self) -> None:
        """Filter the console handlers of Ray's logger (Tune's loggers propagate to it)."""
        self._handlers = [h for h in logging.getLogger("ray").handlers if isinstance(h, logging.StreamHandler)]
        for handler in self._handlers:
            handler.addFilter(self)

    def uninstall(self) -> None:
        """Take the filter off again."""
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers = []

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, without its traceback, which is appended to the log file."""
        if not record.exc_info:
            return True
        full = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(record)
        try:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(full + "\n")
            where = f" (traceback in {self.log_path})"
        except OSError:  # the disk may be full: the one line still goes out
            where = ""
        error = record.exc_info[1]
        record.msg = f"{record.getMessage()} {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}{where}"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True
