"""One point per training iteration for the page's curves: the console line's metrics and env steps/s."""
from __future__ import annotations

import math
from typing import Any

# (key on the page, where it is in a Tune result under env_runners/) — the same metrics as the console line
# (control/integration/callbacks/progress_line.py).
RUNNER_METRICS = {
    "return": "episode_return_mean",
    "progress_pct": "lap_progress_mean",
    "progress_max_pct": "lap_progress_max",
    "lap_time_s": "lap_time_s_mean",
    "offtrack_rate": "offtrack_rate",
    "laps": "laps_completed",
}


def _number(value: Any) -> float | None:
    """A finite float, or None (JSON has no NaN)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def iteration_point(result: dict[str, Any]) -> dict[str, Any]:
    """The curve point of one Tune result: iteration, time, env steps, steps/s and the racing metrics (None = not yet)."""
    runners = result.get("env_runners") or {}
    steps_this_iter = _number(runners.get("num_env_steps_sampled"))
    iter_s = _number(result.get("time_this_iter_s"))
    point: dict[str, Any] = {
        "iteration": int(result.get("training_iteration") or 0),
        "time_total_s": _number(result.get("time_total_s")),
        "env_steps": int(_number(result.get("num_env_steps_sampled_lifetime")) or 0),
        "env_steps_per_s": steps_this_iter / iter_s if steps_this_iter is not None and iter_s else None,
    }
    for key, name in RUNNER_METRICS.items():
        point[key] = _number(runners.get(name))
    evaluation = (result.get("evaluation") or {}).get("env_runners") or {}
    point["eval_progress_pct"] = _number(evaluation.get("lap_progress_mean"))
    return point
