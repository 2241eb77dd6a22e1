"""Stop conditions of a training run: iterations, wall time since (re)start, timesteps, lap progress."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictStr
from ray.tune.stopper import Stopper

from control.config_schema import Expect, Invalid, Number, PositiveWhole, Section, parse_section
from control.errors import ConfigError

_DURATION_RE = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_FORMAT = "a number of seconds or h/m/s parts such as 360s, 10m, 1h, 1h30m"

# Metric paths in an RLlib result dict (env runner metrics, see control.integration.callbacks.metrics).
PROGRESS_METRIC = ("env_runners", "lap_progress_mean")
TIMESTEPS_METRIC = "num_env_steps_sampled_lifetime"


def parse_duration_s(text: str | int | float) -> float:
    """Seconds in '360s', '10m', '1h', '1h30m' or a bare number of seconds; raises ConfigError."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        seconds = float(text)
    else:
        spec = str(text).strip().lower()
        if re.fullmatch(r"\d+(\.\d+)?", spec):
            seconds = float(spec)
        else:
            match = _DURATION_RE.match(spec)
            if not spec or match is None or not any(match.groups()):
                raise ConfigError(f"bad duration '{text}': expected {DURATION_FORMAT}")
            hours, minutes, secs = (int(part or 0) for part in match.groups())
            seconds = float(hours * 3600 + minutes * 60 + secs)
    if seconds <= 0:
        raise ConfigError(f"bad duration '{text}': it must be longer than 0 s")
    return seconds


@dataclass
class StopConditions:
    """When to stop; None disables a condition. Iterations and timesteps are lifetime counters."""

    iteration: int | None = None
    duration_s: float | None = None
    timesteps: int | None = None
    progress: float | None = None  # mean lap progress in percent, 0-100

    def is_empty(self) -> bool:
        """True when no condition is set (the run would never stop by itself)."""
        return all(v is None for v in (self.iteration, self.duration_s, self.timesteps, self.progress))

    def describe(self) -> str:
        """One line for the console: which conditions stop the run."""
        parts = []
        if self.iteration is not None:
            parts.append(f"iteration >= {self.iteration}")
        if self.duration_s is not None:
            parts.append(f"{self.duration_s:.0f} s since start")
        if self.timesteps is not None:
            parts.append(f"timesteps >= {self.timesteps}")
        if self.progress is not None:
            parts.append(f"mean lap progress >= {self.progress:g}%")
        return " or ".join(parts) if parts else "never (stop with Ctrl-C)"


def _duration(value: Any) -> float | None:
    """Seconds of a `duration:` value; a bad one says what the format is."""
    if value is None:
        return None
    try:
        return parse_duration_s(value)
    except ConfigError as exc:
        raise Invalid(str(exc)) from None


class StopConfig(Section):
    """The config's `stop:` section: any condition met stops the run; none set = never (Ctrl-C)."""

    iteration: Annotated[PositiveWhole | None, Expect("a whole number > 0")] = Field(
        None, description="stop at this training iteration (lifetime, carried over a restore)")
    duration: Annotated[StrictStr | Number | None, AfterValidator(_duration)] = Field(
        None, description=f"stop after this long since the (re)start: {DURATION_FORMAT}")
    timesteps: Annotated[PositiveWhole | None, Expect("a whole number > 0")] = Field(
        None, description="stop at this many sampled env steps (lifetime)")
    progress: Annotated[Number | None, Field(gt=0, le=100), Expect("a lap progress in percent, 0 < P <= 100")] = Field(
        None, description="stop when the mean lap progress of the env runners reaches this, %")


def stop_conditions_from(section: dict[str, Any] | None, where: str) -> StopConditions:
    """StopConditions from a config's `stop:` section (keys iteration, duration, timesteps, progress)."""
    stop = parse_section(StopConfig, section, where)
    progress = None if stop.progress is None else float(stop.progress)
    return StopConditions(iteration=stop.iteration, duration_s=stop.duration, timesteps=stop.timesteps, progress=progress)


def result_value(result: dict[str, Any], path: str | tuple[str, ...]) -> Any:
    """The value at `path` (a key or a tuple of nested keys) of a Tune result, or None where it is missing."""
    node: Any = result
    for part in (path,) if isinstance(path, str) else path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


class RunStopper(Stopper):
    """Tune stopper for StopConditions; the duration counts from this stopper's creation (the (re)start)."""

    def __init__(self, conditions: StopConditions):
        self.conditions = conditions
        self._start_s = time.monotonic()
        self.reason: str | None = None

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        """True when any condition is met; remembers why in `reason`."""
        c = self.conditions
        iteration = result.get("training_iteration")
        timesteps = result_value(result, TIMESTEPS_METRIC)
        progress = result_value(result, PROGRESS_METRIC)
        elapsed_s = time.monotonic() - self._start_s
        if c.iteration is not None and iteration is not None and iteration >= c.iteration:
            self.reason = f"reached iteration {iteration}"
        elif c.timesteps is not None and timesteps is not None and timesteps >= c.timesteps:
            self.reason = f"reached {timesteps} timesteps"
        elif c.progress is not None and progress is not None and progress >= c.progress:
            self.reason = f"mean lap progress {progress:.1f}% >= {c.progress:g}%"
        elif c.duration_s is not None and elapsed_s >= c.duration_s:
            self.reason = f"ran {elapsed_s:.0f} s (limit {c.duration_s:.0f} s)"
        else:
            return False
        return True

    def stop_all(self) -> bool:
        """Never stops all trials at once (one trial per run)."""
        return False
