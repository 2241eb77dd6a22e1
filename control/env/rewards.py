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
from collections.abc import Callable, Mapping, Sequence
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


def line_distance_and_speed(x_m: Any, y_m: Any, line_xy_m: np.ndarray, line_speed_mps: np.ndarray) -> tuple[Any, Any]:
    """Distance (m) from points to a closed polyline and the line's speed (m/s) where each point projects."""
    x, y = np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)
    start, end = line_xy_m, np.roll(line_xy_m, -1, axis=0)
    seg = end - start
    len2 = np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-12)
    rx, ry = x[..., None] - start[:, 0], y[..., None] - start[:, 1]  # (..., M)
    u = np.clip((rx * seg[:, 0] + ry * seg[:, 1]) / len2, 0.0, 1.0)
    d2 = (rx - u * seg[:, 0]) ** 2 + (ry - u * seg[:, 1]) ** 2
    best = d2.argmin(axis=-1)
    u_best = np.take_along_axis(u, best[..., None], axis=-1)[..., 0]
    v_line = line_speed_mps[best] * (1.0 - u_best) + np.roll(line_speed_mps, -1)[best] * u_best
    return np.sqrt(np.take_along_axis(d2, best[..., None], axis=-1)[..., 0]), v_line


def racing_line_score(distance_m: Any, speed_mps: Any, line_speed_mps: Any, track_width_m: Any,
                      max_speed_mps: float = DEEPRACER_LIMITS.max_speed_mps) -> Any:
    """1 on the line at its speed, less off it (0 at half the track width) and off its speed.

    Below the line's speed the score is (v / v_line)**2: per metre driven, a slower car earns less,
    so a slow lap never pays more than a fast one (an episode ends when the lap is complete).
    Above it the score falls by 1 per quarter of the top speed: the profile is the grip limit.
    """
    closeness = np.clip(1.0 - np.asarray(distance_m) / (0.5 * np.asarray(track_width_m)), 0.0, 1.0)
    v, v_line = np.asarray(speed_mps, dtype=np.float64), np.maximum(np.asarray(line_speed_mps, dtype=np.float64), 1e-6)
    speed_score = np.where(v <= v_line, (v / v_line) ** 2, np.clip(1.0 - (v - v_line) / (0.25 * max_speed_mps), 0.0, 1.0))
    return closeness * speed_score


_LINES_BY_WAYPOINTS: dict[int, tuple[Any, np.ndarray, np.ndarray]] = {}
_MAX_CACHED_LINES = 64  # procedural tracks come and go: keep the latest lines only


def _line_for_params(params: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The precomputed racing line (xy, speed) of the track the params' waypoints describe (cached per track)."""
    waypoints = params["waypoints"]
    cached = _LINES_BY_WAYPOINTS.get(id(waypoints))
    if cached is not None and cached[0] is waypoints:  # the env hands the same list object every step
        return cached[1], cached[2]
    from control.sim.raceline import racing_line
    from control.track.track import Track

    # DeepRacer's params hold the centerline and a width, not the borders: the line is optimised on
    # that constant-width track (exact for constant-width tracks), and cached on disk per geometry.
    track = Track(np.asarray(waypoints, dtype=np.float64), width_m=float(np.asarray(params["track_width"]).reshape(-1)[0]),
                  name="reward_track")
    line = racing_line(track, DEEPRACER_LIMITS)
    if len(_LINES_BY_WAYPOINTS) >= _MAX_CACHED_LINES:
        del _LINES_BY_WAYPOINTS[next(iter(_LINES_BY_WAYPOINTS))]  # the oldest entry
    _LINES_BY_WAYPOINTS[id(waypoints)] = (waypoints, line.xy_m, line.speed_mps)  # holds the list: its id stays unique
    return line.xy_m, line.speed_mps


def racing_line_reward(params: Mapping[str, Any], max_speed_mps: float = DEEPRACER_LIMITS.max_speed_mps) -> dict[str, Any]:
    """Distance to the track's minimum-time racing line and speed against its profile (one car's params)."""
    one_car = {key: np.reshape(np.asarray(params[key], dtype=np.float64), -1)[:1] for key in ("x", "y", "speed", "track_width")}
    return {"racing_line": racing_line_rewards(one_car, [params["waypoints"]], max_speed_mps)["racing_line"][0]}


def racing_line_rewards(params: Mapping[str, Any], waypoints_per_car: Sequence[Any],
                        max_speed_mps: float = DEEPRACER_LIMITS.max_speed_mps) -> dict[str, np.ndarray]:
    """`racing_line_reward` over the race core's batched params: each car against its own track's line.

    Cars on the same track (the same waypoints list object) are scored in one vectorised call, so
    N cars cost about one car's Python overhead per track instead of N (the per-car dict path).
    """
    x, y = np.asarray(params["x"], dtype=np.float64), np.asarray(params["y"], dtype=np.float64)
    speed, width = np.asarray(params["speed"], dtype=np.float64), np.asarray(params["track_width"], dtype=np.float64)
    groups: dict[int, list[int]] = {}
    for i, waypoints in enumerate(waypoints_per_car):
        groups.setdefault(id(waypoints), []).append(i)
    score = np.zeros(len(waypoints_per_car))
    for members in groups.values():
        idx = np.asarray(members)
        line_xy, line_speed = _line_for_params({"waypoints": waypoints_per_car[members[0]], "track_width": width[idx[0]]})
        distance, v_line = line_distance_and_speed(x[idx], y[idx], line_xy, line_speed)
        score[idx] = racing_line_score(distance, speed[idx], v_line, width[idx], max_speed_mps)
    return {"racing_line": score}


BUILTIN_REWARDS: dict[str, RewardComponents] = {
    "follow_center_line": follow_center_line,
    "progress_per_step": progress_per_step,
    "center_line_speed": center_line_speed,
}

# Built-ins that need each car's track (DeepRacer's waypoints): one car's dict (a reward file's API) ...
PER_CAR_BUILTIN_REWARDS: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "racing_line": racing_line_reward,
}
# ... and the same over the race core's arrays with each car's waypoints list (what the env calls).
TRACK_BUILTIN_REWARDS: dict[str, Callable[[Mapping[str, Any], Sequence[Any]], dict[str, np.ndarray]]] = {
    "racing_line": racing_line_rewards,
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
    if spec in PER_CAR_BUILTIN_REWARDS:
        per_car = PER_CAR_BUILTIN_REWARDS[spec]
        return lambda params: {"reward_function": sum(per_car(params).values())}
    path = Path(spec).expanduser()
    if path.suffix == ".py":
        if not path.is_file():
            raise ConfigError(f"reward file '{path}' does not exist; expected a .py file defining reward_function(params)")
        user_fn = _user_reward_function(str(path.resolve()), path.stat().st_mtime_ns)
        return lambda params: {"reward_function": user_fn(dict(params))}
    raise ConfigError(
        f"env_config.reward is {spec!r}{did_you_mean(spec, [*BUILTIN_REWARDS, *PER_CAR_BUILTIN_REWARDS])}; expected one of "
        f"{', '.join([*BUILTIN_REWARDS, *PER_CAR_BUILTIN_REWARDS])} or a path to a .py file defining reward_function(params)"
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
