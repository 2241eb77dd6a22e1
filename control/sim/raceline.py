"""Minimum-time racing line: the lateral position at every waypoint that minimises the lap time.

The lap time is the one of the lap-time reference (control/track/lap_time.py): the
quasi-steady-state speed model of a car with a top speed, an acceleration and a braking
limit and lateral grip ``v**2 * |curvature| <= mu * g``, here along a line anywhere inside
the track less the car's half-width and a safety margin, instead of along the centerline.

Two stages, both with well-kept solvers:

1. *Minimum curvature* (the classic start of racing-line optimisers, as in TUM's
   trajectory-planning-helpers): minimise the sum of squared second differences of the line's
   points, a bounded linear least-squares problem in the lateral positions, solved by
   ``scipy.optimize.lsq_linear``. It finds the smooth line but not the fastest one (on a
   circle it hugs the *outer* border).
2. *Minimum time*: the lap time itself, ``sum(2 ds / (v_i + v_i+1))``, over the lateral
   positions and the speeds jointly, subject to the grip, acceleration, braking, top-speed and
   steering-lock limits of the same model, solved by CasADi + IPOPT (exact derivatives, a
   sparse interior-point method: about a second for a few hundred waypoints) from the first
   stage's line. The speed constraints are exactly the forward/backward passes of the
   reference, so the optimum is the reference's lap time along the line it returns.

The line's lap time is then re-measured with the lap-time reference code itself
(`lap_time_reference` on the line), so the "optimal lap" is like with like with the
centerline lap. Lines are cached on disk per track geometry and car limits.

It sits beside the lap-time reference (control/sim/lap_time.py) and for the same reason: it
needs a car's `VehicleLimits`, and the track layer imports nothing from the simulator layer.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from control.errors import ConfigError
from control.sim.base import VehicleLimits
from control.sim.lap_time import LapTimeReference, lap_time_reference
from control.track.track import Track

DEFAULT_MARGIN_M = 0.05  # safety margin kept from each border beyond the car's half-width, m
DEFAULT_SPACING_M = 0.1  # waypoint spacing of the optimised line, m
_MIN_POINTS = 60
_MIN_SPEED_MPS = 0.1  # the optimiser's speed floor: the lap-time objective divides by speed
CACHE_VERSION = 1  # bump when the optimiser changes what it returns for the same input
CACHE_ENV = "RACELINE_CACHE_DIR"


@dataclass(frozen=True)
class RacingLine:
    """A closed racing line (no repeated last row), its speed profile and its lap times."""

    track_name: str
    xy_m: np.ndarray  # (M, 2) line points, driving order = the track's waypoint order
    speed_mps: np.ndarray  # (M,) flying-lap speed profile along the line
    lateral_fraction: np.ndarray  # (M,) 0 = right border, 1 = left border (in driving order)
    reference: LapTimeReference  # the lap-time reference evaluated along the line
    centerline: LapTimeReference  # the same reference along the centerline
    margin_m: float
    limits: VehicleLimits

    @property
    def lap_time_s(self) -> float:
        """Flying lap along the line (the optimum)."""
        return self.reference.lap_time_s

    @property
    def standing_start_lap_time_s(self) -> float:
        """One lap along the line from rest at its first point."""
        return self.reference.standing_start_lap_time_s

    @property
    def cumulative_s_m(self) -> np.ndarray:
        """(M+1,) distance along the line from its first point, closing the loop."""
        return np.r_[0.0, np.cumsum(self.reference.segment_length_m)]

    def to_community_array(self, with_speed: bool = False) -> np.ndarray:
        """DeepRacer community race-line array: (M+1, 2) x, y, first row repeated last; (M+1, 3) with speed."""
        rows = np.c_[self.xy_m, self.speed_mps] if with_speed else self.xy_m
        return np.vstack([rows, rows[:1]])


def _resampled_borders(track: Track, spacing_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Right and left borders (driving order) at equal centerline spacing, closed loop without repeat."""
    n = max(int(np.ceil(track.length_m / spacing_m)), _MIN_POINTS)
    s_query = np.linspace(0.0, track.length_m, n, endpoint=False)
    s_known = track.cumulative_s_m
    keep = np.r_[True, np.diff(s_known) > 1e-9]  # zero-length segments repeat a point: drop them
    s_known = s_known[keep]

    def interp(points: np.ndarray) -> np.ndarray:
        closed = np.vstack([points, points[:1]])[keep]
        return np.c_[np.interp(s_query, s_known, closed[:, 0]), np.interp(s_query, s_known, closed[:, 1])]

    return interp(track.right_border_m), interp(track.left_border_m)


def _lateral_bounds(right: np.ndarray, left: np.ndarray, keep_m: float, track_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Fractions [lo, hi] of the right-to-left span the car's centre may use."""
    width = np.hypot(*(left - right).T)
    frac = keep_m / np.maximum(width, 1e-9)
    if np.any(frac >= 0.5):
        i = int(np.argmax(width < 2 * keep_m))
        raise ConfigError(
            f"track '{track_name}' is {width[i]:.2f} m wide near point {i}: too narrow for a car that keeps "
            f"{keep_m:.3f} m from each border; lower the margin (margin_m) or use a wider track"
        )
    return frac, 1.0 - frac


def minimum_curvature_fraction(right: np.ndarray, left: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Lateral fractions (M,) minimising the sum of squared second differences of the line's points (OSQP)."""
    import casadi as ca

    n = len(right)
    t = ca.SX.sym("t", n)
    span = left - right
    px = right[:, 0] + t * span[:, 0]
    py = right[:, 1] + t * span[:, 1]
    idx = np.arange(n)
    prev, nxt = ((idx - 1) % n).tolist(), ((idx + 1) % n).tolist()
    # Second difference at i: p[i-1] - 2 p[i] + p[i+1], the discrete curvature on equal spacing.
    ddx, ddy = px[prev] - 2.0 * px + px[nxt], py[prev] - 2.0 * py + py[nxt]
    qp = {"x": t, "f": ca.sumsqr(ddx) + ca.sumsqr(ddy)}
    solver = ca.qpsol("min_curvature", "osqp", qp, {
        "print_time": False, "error_on_fail": False,
        "osqp": {"verbose": False, "eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20000, "polish": False},
    })
    sol = solver(x0=np.full(n, 0.5), lbx=lo, ubx=hi)
    return np.clip(np.asarray(sol["x"]).reshape(-1), lo, hi)


def _speed_profile_of(xy: np.ndarray, car: VehicleLimits) -> LapTimeReference:
    """The lap-time reference along a closed polyline (the reference's own code: like with like)."""
    return lap_time_reference(Track(xy, width_m=0.1, name="line"), car)


def minimum_time_fraction(right: np.ndarray, left: np.ndarray, lo: np.ndarray, hi: np.ndarray, start: np.ndarray,
                          car: VehicleLimits, max_iter: int = 500) -> np.ndarray:
    """Lateral fractions (M,) minimising the quasi-steady-state lap time (CasADi + IPOPT from `start`)."""
    import casadi as ca

    n = len(right)
    # SX: a flat expression graph, evaluated far faster than MX for these element-wise terms.
    t = ca.SX.sym("t", n)
    v = ca.SX.sym("v", n)
    span = left - right
    px = right[:, 0] + t * span[:, 0]
    py = right[:, 1] + t * span[:, 1]

    def shift(expr: Any, k: int) -> Any:
        k %= n
        return ca.vertcat(expr[k:], expr[:k]) if k else expr

    ex, ey = shift(px, 1) - px, shift(py, 1) - py  # segment i: point i -> i+1
    ds = ca.sqrt(ex * ex + ey * ey + 1e-12)
    # Menger curvature at point i from points i-1, i, i+1 (the reference's own formula).
    ax, ay = px - shift(px, -1), py - shift(py, -1)
    cx, cy = shift(px, 1) - shift(px, -1), shift(py, 1) - shift(py, -1)
    chord = ca.sqrt(cx * cx + cy * cy + 1e-12)
    kappa = 2.0 * (ax * cy - ay * cx) / (shift(ds, -1) * ds * chord)
    v_next = shift(v, 1)
    lap_time = ca.sum1(2.0 * ds / (v + v_next))
    grip = car.friction_mu * car.gravity_mps2
    g = ca.vertcat(
        v * v * kappa / grip,  # lateral grip, normalised: in [-1, 1]
        (v_next * v_next - v * v) - 2.0 * car.max_accel_mps2 * ds,  # acceleration: <= 0
        (v * v - v_next * v_next) - 2.0 * car.max_brake_mps2 * ds,  # braking: <= 0
        kappa / car.max_curvature_per_m,  # steering lock: in [-1, 1]
    )
    lbg = np.r_[-np.ones(n), -np.inf * np.ones(2 * n), -np.ones(n)]
    ubg = np.r_[np.ones(n), np.zeros(2 * n), np.ones(n)]
    v0 = np.clip(_speed_profile_of(right + start[:, None] * span, car).speed_profile_mps, _MIN_SPEED_MPS, car.max_speed_mps)
    solver = ca.nlpsol("raceline", "ipopt", {"x": ca.vertcat(t, v), "f": lap_time, "g": g}, {
        "print_time": False,
        "ipopt": {"print_level": 0, "sb": "yes", "max_iter": max_iter, "tol": 1e-7, "acceptable_tol": 1e-5,
                  "mu_strategy": "adaptive"},
    })
    sol = solver(x0=np.r_[start, 0.98 * v0], lbx=np.r_[lo, np.full(n, _MIN_SPEED_MPS)],
                 ubx=np.r_[hi, np.full(n, car.max_speed_mps)], lbg=lbg, ubg=ubg)
    stats = solver.stats()
    status = stats.get("return_status", "")
    if os.environ.get("RACELINE_DEBUG"):
        print(f"ipopt: {status}, {stats.get('iter_count')} iterations, {stats.get('t_wall_total', 0):.2f} s")
    frac = np.clip(np.asarray(sol["x"]).reshape(-1)[:n], lo, hi)
    if status not in ("Solve_Succeeded", "Solved_To_Acceptable_Level", "Maximum_Iterations_Exceeded"):
        warnings.warn(f"racing line: IPOPT ended with {status}; using the minimum-curvature line", RuntimeWarning, stacklevel=2)
        return start  # the minimum-curvature line is still a valid line, only not the fastest
    return frac


def _cache_key(track: Track, car: VehicleLimits, margin_m: float, spacing_m: float) -> str:
    """Hash of the track geometry, the car limits and the settings: one cached line per combination."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(track.to_waypoint_array(), dtype=np.float64).tobytes())
    settings = {"car": dataclasses.asdict(car), "margin_m": margin_m, "spacing_m": spacing_m, "version": CACHE_VERSION}
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:24]


def default_cache_dir() -> Path:
    """Where lines are cached: $RACELINE_CACHE_DIR, else ~/.cache/racer/racelines."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "racer" / "racelines")


def racing_line(track: Track, limits: VehicleLimits, margin_m: float = DEFAULT_MARGIN_M, spacing_m: float = DEFAULT_SPACING_M,
                cache_dir: Path | str | None = None, use_cache: bool = True) -> RacingLine:
    """The minimum-time racing line of `track` for a car with `limits`."""
    car = limits
    if not (np.isfinite(margin_m) and margin_m >= 0):
        raise ConfigError(f"racing line: margin_m must be a distance >= 0 m, got {margin_m!r}")
    if not (np.isfinite(spacing_m) and 0.01 <= spacing_m <= 1.0):
        raise ConfigError(f"racing line: spacing_m must be between 0.01 and 1 m, got {spacing_m!r}")
    right, left = _resampled_borders(track, spacing_m)
    lo, hi = _lateral_bounds(right, left, 0.5 * car.axle_track_m + margin_m, track.name)
    cache_file = None
    frac = None
    if use_cache:
        cache_file = Path(cache_dir or default_cache_dir()) / f"{_cache_key(track, car, margin_m, spacing_m)}.npy"
        if cache_file.is_file():
            try:
                cached = np.load(cache_file, allow_pickle=False)
                frac = cached if cached.shape == lo.shape else None
            except (OSError, ValueError):
                frac = None  # a damaged cache entry is recomputed
    if frac is None:
        start = minimum_curvature_fraction(right, left, lo, hi)
        frac = minimum_time_fraction(right, left, lo, hi, start, car)
        if cache_file is not None:
            try:
                cache_file.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, frac)
                os.replace(tmp, cache_file)
            except OSError:
                pass  # a read-only cache only costs the time to recompute
    xy = right + frac[:, None] * (left - right)
    reference = _speed_profile_of(xy, car)
    centerline = lap_time_reference(track, car)
    return RacingLine(track_name=track.name, xy_m=xy, speed_mps=reference.speed_profile_mps, lateral_fraction=frac,
                      reference=reference, centerline=centerline, margin_m=float(margin_m), limits=car)


def racing_line_for_env_config(track: Track, env_config: Mapping[str, Any] | None = None,
                               margin_m: float = DEFAULT_MARGIN_M, **kwargs: Any) -> RacingLine:
    """The racing line of `track` for the car an env_config's simulator declares (defaults filled in)."""
    from control.sim.registry import vehicle_limits

    return racing_line(track, vehicle_limits(env_config), margin_m=margin_m, **kwargs)
