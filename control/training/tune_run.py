"""One training run under Ray Tune: checkpoints, stop conditions, graceful Ctrl-C/SIGTERM, restore."""
from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control.errors import UserError
from control.training.stop import RunStopper, StopConditions

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


class StopSignal:
    """First SIGINT/SIGTERM: finish the iteration, checkpoint, stop. Second: abort at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere Tune's defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the stopper with its experiment state; the saved handlers (Tune's own
        # SIGINT handler among them) hold locks that cannot be pickled and mean nothing elsewhere.
        return {"received": self.received, "_previous": {}}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            self.uninstall()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without a checkpoint")
        self.received = signal.Signals(signum).name
        print(f"\n{self.received} received: finishing this iteration, saving a checkpoint, then stopping "
              "(send it again to abort at once)", flush=True)


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
             verbose: int = 1) -> TrainOutcome:
    """Train `algo_config` (a PPOConfig) with Tune into run_folder/train_<n>/ until a stop condition."""
    from ray import tune

    stop_signal = StopSignal()
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
    stop_signal.install()
    try:
        results = tuner.fit()
    finally:
        stop_signal.uninstall()
        if previous is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous
    result = results[0]
    if result.error is not None:
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
