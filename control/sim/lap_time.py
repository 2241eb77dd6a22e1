"""Lap-time reference: the quasi-steady-state minimum lap time along a track's centerline.

The car's limits (top speed, acceleration, braking, lateral grip) give, at each waypoint,
the fastest speed the car can hold on the centerline's curvature: ``min(v_max, sqrt(mu*g/|k|))``.
A forward pass limits how fast the car can speed up between waypoints, a backward pass
how fast it can slow down. The reference is the *flying lap*: the periodic solution, where
the car crosses the start line at the speed it will have again one lap later (no standing
start). On a circle of radius R this is exactly ``L / min(v_max, sqrt(mu*g*R))``.

It is a reference, not a bound: a racing line that cuts corners is faster than the
centerline, and a policy that drives the centerline cannot beat it.

It lives above the track layer (it needs a car, the track does not) and takes the car as the
backend's `VehicleLimits`, so no limit is written down twice.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from control.errors import ConfigError
from control.sim.base import VehicleLimits


@dataclass(frozen=True)
class LapTimeReference:
    """The minimum centerline lap time and the speed profile that achieves it."""

    lap_time_s: float  # flying lap: periodic solution, no standing start
    standing_start_lap_time_s: float  # from rest at waypoint 0, one lap, crossing the line flat out
    speed_profile_mps: np.ndarray  # (N,) flying-lap speed at each waypoint
    corner_speed_limit_mps: np.ndarray  # (N,) min(v_max, sqrt(mu*g/|curvature|)) at each waypoint
    segment_length_m: np.ndarray  # (N,) waypoint i -> i+1 (wrapping)
    segment_time_s: np.ndarray  # (N,) flying-lap time spent on each segment
    track_length_m: float
    centerline_feasible: bool  # False when some curvature exceeds what full steering lock can do
    limits: dict = field(default_factory=dict)  # the VehicleLimits used (asdict), units in the keys

    @property
    def average_speed_mps(self) -> float:
        """Mean speed over the flying lap."""
        return self.track_length_m / self.lap_time_s


def _forward_pass(v_cap: np.ndarray, ds_m: np.ndarray, v_start: float, accel_mps2: float) -> np.ndarray:
    """Speeds limited by acceleration: v[i+1] <= sqrt(v[i]^2 + 2 a ds[i]), starting at v_start."""
    v = np.empty_like(v_cap)
    v[0] = min(v_start, v_cap[0])
    # Sequential by nature; N is a few hundred waypoints.
    for i in range(len(v_cap) - 1):
        v[i + 1] = min(v_cap[i + 1], np.sqrt(v[i] * v[i] + 2.0 * accel_mps2 * ds_m[i]))
    return v


def _backward_pass(v_cap: np.ndarray, ds_m: np.ndarray, brake_mps2: float) -> np.ndarray:
    """Speeds limited by braking: v[i] <= sqrt(v[i+1]^2 + 2 b ds[i]), ending at v_cap[-1]."""
    v = v_cap.copy()
    for i in range(len(v_cap) - 2, -1, -1):
        v[i] = min(v[i], np.sqrt(v[i + 1] * v[i + 1] + 2.0 * brake_mps2 * ds_m[i]))
    return v


def _segment_times_s(v_mps: np.ndarray, ds_m: np.ndarray) -> np.ndarray:
    """Time on each segment at constant acceleration between its end speeds: 2 ds / (v0 + v1)."""
    v_sum = np.maximum(v_mps[:-1] + v_mps[1:], 1e-9)
    return 2.0 * ds_m / v_sum


def speed_profile(curvature_per_m: np.ndarray, segment_length_m: np.ndarray, limits: VehicleLimits) -> tuple[np.ndarray, np.ndarray]:
    """Periodic (flying-lap) speed profile (N,) and the corner speed caps (N,) for a closed loop.

    `curvature_per_m[i]` is the curvature at waypoint i, `segment_length_m[i]` the length
    from waypoint i to i+1 (the last one wraps to waypoint 0).
    """
    kappa = np.abs(np.asarray(curvature_per_m, dtype=float))
    ds_m = np.asarray(segment_length_m, dtype=float)
    with np.errstate(divide="ignore"):
        grip_speed = np.sqrt(limits.friction_mu * limits.gravity_mps2 / kappa)  # inf on straights
    v_cap = np.minimum(limits.max_speed_mps, grip_speed)
    n = len(v_cap)
    # Start both passes at the slowest point: there the periodic speed equals its cap
    # (every pass value is >= the global minimum cap), so one lap gives the exact
    # periodic solution without iterating.
    k = int(np.argmin(v_cap))
    order = np.r_[np.arange(k, n), np.arange(0, k), k]  # one lap from k back to k
    cap_loop = v_cap[order]
    ds_loop = ds_m[order[:-1]]
    v_fwd = _forward_pass(cap_loop, ds_loop, cap_loop[0], limits.max_accel_mps2)
    v_loop = _backward_pass(v_fwd, ds_loop, limits.max_brake_mps2)
    v = np.empty(n)
    v[order[:-1]] = v_loop[:-1]
    return v, v_cap


def _check_limits(limits: VehicleLimits) -> None:
    """Raise ConfigError for a limit the reference cannot use (zero grip, no top speed, ...)."""
    for name in ("max_speed_mps", "max_accel_mps2", "max_brake_mps2", "friction_mu", "gravity_mps2",
                 "max_steering_deg", "wheelbase_m"):
        value = getattr(limits, name)
        if not (np.isfinite(value) and value > 0):
            raise ConfigError(f"lap-time reference: {name} must be a positive number, got {value!r}")


def lap_time_from_arrays(curvature_per_m: np.ndarray, segment_length_m: np.ndarray, limits: VehicleLimits) -> LapTimeReference:
    """The lap-time reference for a closed loop given per-waypoint curvature and segment lengths."""
    _check_limits(limits)
    kappa = np.abs(np.asarray(curvature_per_m, dtype=float))
    ds_m = np.asarray(segment_length_m, dtype=float)
    if kappa.shape != ds_m.shape or kappa.ndim != 1 or len(kappa) < 3:
        raise ValueError(
            f"curvature_per_m {kappa.shape} and segment_length_m {ds_m.shape} must be equal-length 1-D arrays (N >= 3)"
        )
    v, v_cap = speed_profile(kappa, ds_m, limits)
    v_closed = np.r_[v, v[0]]
    seg_t = _segment_times_s(v_closed, ds_m)

    # Standing start at waypoint 0: from rest, no braking needed after the finish line.
    cap_open = np.r_[v_cap, np.inf]
    v_open = _backward_pass(_forward_pass(cap_open, ds_m, 0.0, limits.max_accel_mps2), ds_m, limits.max_brake_mps2)
    standing_t = float(_segment_times_s(v_open, ds_m).sum())

    return LapTimeReference(
        lap_time_s=float(seg_t.sum()),
        standing_start_lap_time_s=standing_t,
        speed_profile_mps=v,
        corner_speed_limit_mps=v_cap,
        segment_length_m=ds_m,
        segment_time_s=seg_t,
        track_length_m=float(ds_m.sum()),
        centerline_feasible=bool(np.all(kappa <= limits.max_curvature_per_m + 1e-9)),
        limits=asdict(limits),
    )


def lap_time_reference(track: Any, limits: VehicleLimits) -> LapTimeReference:
    """The flying-lap minimum time along `track`'s centerline for a backend's car limits."""
    ds_m = np.diff(np.asarray(track.cumulative_s_m, dtype=float))
    return lap_time_from_arrays(track.curvature_per_m(), ds_m, limits)


def reference_for_env_config(track: Any, env_config: Mapping[str, Any] | None = None) -> LapTimeReference:
    """The lap-time reference for `track` and the car an env_config's simulator declares (defaults filled in)."""
    from control.sim.registry import vehicle_limits

    return lap_time_reference(track, vehicle_limits(env_config))
