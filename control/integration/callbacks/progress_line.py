"""A Tune callback printing one compact line per training iteration (the racing metrics first)."""
from __future__ import annotations

from typing import Any

from ray.tune import Callback


def _fmt(value: Any, spec: str, unit: str = "") -> str:
    """A number formatted with `spec`, or '-' when the metric is not there yet."""
    return "-" if value is None else f"{value:{spec}}{unit}"


def format_iteration_line(result: dict[str, Any]) -> str:
    """`iter 5  31 s  20,013 steps  return 61.2  progress 27.0% (max 100%)  laps 1  lap 19.00 s  off-track 72%`."""
    runners = result.get("env_runners", {}) or {}
    offtrack = runners.get("offtrack_rate")
    parts = [
        f"iter {result.get('training_iteration', 0):>4}",
        f"{result.get('time_total_s', 0.0):>6.0f} s",
        f"{int(result.get('num_env_steps_sampled_lifetime', 0) or 0):>9,} steps",
        f"return {_fmt(runners.get('episode_return_mean'), '.1f')}",
        f"progress {_fmt(runners.get('lap_progress_mean'), '.1f', '%')} (max {_fmt(runners.get('lap_progress_max'), '.0f', '%')})",
        f"laps {_fmt(runners.get('laps_completed'), '.0f')}",
        f"lap {_fmt(runners.get('lap_time_s_mean'), '.2f', ' s')}",
        f"off-track {_fmt(None if offtrack is None else 100 * offtrack, '.0f', '%')}",
    ]
    evaluation = (result.get("evaluation", {}) or {}).get("env_runners", {}) or {}
    if evaluation:
        parts.append(f"eval progress {_fmt(evaluation.get('lap_progress_mean'), '.1f', '%')}")
    return "  ".join(parts)


class IterationLineCallback(Callback):
    """Prints format_iteration_line for every result (Tune's own tables stay off)."""

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        print(format_iteration_line(result), flush=True)
