"""Reward functions with AWS DeepRacer's API: `reward_function(params) -> float`.

Built-ins are registered by name; a config may instead name a Python file that defines
`reward_function(params)`, so a DeepRacer reward function works here unchanged.
The built-ins work on arrays: given params whose values are (N,) arrays (the race core's
batched params) they reward N cars in one call; given one car's dict they reward that car.
"""
from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from control.errors import ConfigError, RewardFunctionError, did_you_mean
from control.sim.base import DEEPRACER_LIMITS

RewardComponents = Callable[[Mapping[str, Any]], dict[str, float]]


def follow_center_line(params: Mapping[str, Any]) -> dict[str, Any]:
    """DeepRacer's example 1: reward staying near the center line, in three bands."""
    width = np.asarray(params["track_width"], dtype=np.float64)
    distance = np.asarray(params["distance_from_center"], dtype=np.float64)
    # np.where, innermost band last: np.select costs ~10x more on the small arrays of a step.
    reward = np.where(distance <= 0.1 * width, 1.0, np.where(distance <= 0.25 * width, 0.5,
                      np.where(distance <= 0.5 * width, 0.1, 1e-3)))  # 1e-3: likely crashed / close to off track
    return {"center_line": reward}


def progress_per_step(params: Mapping[str, Any]) -> dict[str, Any]:
    """DeepRacer's progress-rate reward: lap progress per step (higher when the lap is driven faster)."""
    steps = np.maximum(np.asarray(params["steps"]), 1)
    progress = np.asarray(params["progress"], dtype=np.float64)
    reward = progress / steps  # % per step; a 10 s lap at 15 Hz ≈ 0.67
    bonus = np.where(progress >= 100, 10.0, 0.0)
    return {"progress_rate": reward, "lap_bonus": bonus}


def _track_direction_rad(params: Mapping[str, Any]) -> Any:
    """Direction of the centerline between the closest waypoints, radians."""
    if "waypoint_direction_rad" in params:  # the race core's batched params carry it precomputed
        return params["waypoint_direction_rad"]
    waypoints = params["waypoints"]
    behind, ahead = params["closest_waypoints"]
    (x0, y0), (x1, y1) = waypoints[behind], waypoints[ahead]
    return math.atan2(y1 - y0, x1 - x0)


def center_line_speed(params: Mapping[str, Any], max_speed_mps: float = DEEPRACER_LIMITS.max_speed_mps) -> dict[str, Any]:
    """Speed along the track direction, worth up to 1.5× on the center line (speed × centering).

    Every term scales with speed: a per-step bonus for merely staying on track would pay a
    policy to lap slowly, since an episode ends when the lap is complete. `max_speed_mps` is the
    car's top speed (the race core passes its backend's VehicleLimits).
    """
    heading_error = np.radians(params["heading"]) - _track_direction_rad(params)
    along = np.maximum(np.cos(heading_error), 0.0)
    centering = np.maximum(1.0 - np.asarray(params["distance_from_center"]) / (0.5 * np.asarray(params["track_width"])), 0.0)
    speed_term = np.asarray(params["speed"]) / max_speed_mps * along
    return {"speed_along_track": speed_term, "centering": 0.5 * centering * speed_term}


BUILTIN_REWARDS: dict[str, RewardComponents] = {
    "follow_center_line": follow_center_line,
    "progress_per_step": progress_per_step,
    "center_line_speed": center_line_speed,
}


def _load_user_file(path: Path) -> Callable[[dict], Any]:
    """Import `reward_function` from a user's Python file."""
    spec = importlib.util.spec_from_file_location(f"user_reward_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ConfigError(f"reward file '{path}' failed to import: {type(exc).__name__}: {exc}") from None
    fn = getattr(module, "reward_function", None)
    if not callable(fn):
        raise ConfigError(f"reward file '{path}' defines no reward_function(params); DeepRacer's API needs one")
    return fn


# Built-ins that take the car's top speed.
_TAKES_MAX_SPEED = ("center_line_speed",)


def builtin_reward(spec: str, max_speed_mps: float) -> RewardComponents | None:
    """The built-in reward named `spec` bound to the car's top speed, or None for a reward file."""
    fn = BUILTIN_REWARDS.get(spec)
    if fn is None:
        return None
    return functools.partial(fn, max_speed_mps=max_speed_mps) if spec in _TAKES_MAX_SPEED else fn


@functools.lru_cache(maxsize=32)
def _user_reward_function(path: str, mtime_ns: int) -> Callable[[dict], Any]:
    """A user's reward_function, imported once per process per file version."""
    return _load_user_file(Path(path))


def load_reward_function(spec: str) -> RewardComponents:
    """A callable params -> {component: value} for a built-in name or a .py file path (imported once per process)."""
    if not isinstance(spec, str):
        raise ConfigError(f"env_config.reward must be a built-in name or a .py path, got {spec!r}")
    if spec in BUILTIN_REWARDS:
        return BUILTIN_REWARDS[spec]
    path = Path(spec).expanduser()
    if path.suffix == ".py":
        if not path.is_file():
            raise ConfigError(f"reward file '{path}' does not exist; expected a .py file defining reward_function(params)")
        user_fn = _user_reward_function(str(path.resolve()), path.stat().st_mtime_ns)
        return lambda params: {"reward_function": user_fn(dict(params))}
    raise ConfigError(
        f"env_config.reward is {spec!r}{did_you_mean(spec, BUILTIN_REWARDS)}; expected one of "
        f"{', '.join(BUILTIN_REWARDS)} or a path to a .py file defining reward_function(params)"
    )


def evaluate_reward(fn: RewardComponents, params: Mapping[str, Any], step: int) -> tuple[float, dict[str, float]]:
    """Call the reward function; a raise or a non-finite value is a RewardFunctionError naming the step."""
    try:
        components = fn(params)
        values = {k: float(v) for k, v in components.items()}
    except Exception as exc:
        shown = {k: v for k, v in params.items() if k != "waypoints"}
        raise RewardFunctionError(
            f"reward function raised {type(exc).__name__}: {exc} at step {step} with params {shown}"
        ) from exc
    total = sum(values.values())
    if not math.isfinite(total):
        raise RewardFunctionError(f"reward function returned non-finite {total} at step {step} (components {values})")
    return total, values
