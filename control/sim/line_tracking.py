"""A tracking controller that drives the built-in car along a racing line: the check that the line is drivable.

Pure pursuit steers towards a point a speed-dependent distance ahead on the line; the speed
command is the line's own profile at the point the car reaches by the end of the control
period (the car's throttle tracks a target speed within its acceleration and braking limits).
The car is the built-in simulator's batched core (`BuiltinBatch`), the same physics the env
steps, at its control rate: one command per period, held for the physics sub-steps.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from control.sim.raceline import RacingLine
from control.track.track import Track

LOOKAHEAD_S = 0.12  # pure-pursuit look-ahead as time at the current speed, s
MIN_LOOKAHEAD_M = 0.2  # look-ahead floor at low speed, m
_SEARCH_WINDOW = 40  # line points searched either side of the last nearest point
# The line uses all the grip, leaving none to correct an error: off the line, the speed command drops
# by SLOWDOWN_PER_M per metre of error beyond ERROR_DEADBAND_M, giving the tyres grip to steer back.
ERROR_DEADBAND_M = 0.03
SLOWDOWN_PER_M = 2.0
MIN_SPEED_FACTOR = 0.8


@dataclass(frozen=True)
class TrackedLap:
    """What the tracking controller achieved on one lap."""

    lap_time_s: float  # time between two crossings of the line's first point (flying) or from rest (standing)
    standing_start: bool
    max_line_error_m: float  # largest distance of the car's centre from the line
    wheels_off_track_steps: int  # control steps with at least one wheel outside the borders
    understeer_steps: int  # control steps where the grip limit cut the curvature


def _nearest_index(line_xy: np.ndarray, x: float, y: float, around: int) -> int:
    """Index of the line point nearest (x, y), searched in a window around `around`."""
    n = len(line_xy)
    window = (around + np.arange(-_SEARCH_WINDOW, _SEARCH_WINDOW + 1)) % n
    d2 = (line_xy[window, 0] - x) ** 2 + (line_xy[window, 1] - y) ** 2
    return int(window[int(np.argmin(d2))])


def drive_line(line: RacingLine, track: Track, builtin_config: Mapping[str, Any] | None = None,
               standing_start: bool = False, max_laps_time_factor: float = 3.0) -> TrackedLap:
    """Drive one lap of `line` on `track` with the built-in car (flying: from the line's speed at its first point)."""
    from control.sim.builtin import BuiltinBatch

    sim = BuiltinBatch(1, builtin_config)
    limits = sim.limits
    xy, speed = line.xy_m, line.speed_mps
    n = len(xy)
    s_line = line.cumulative_s_m  # (n+1,)
    length_m = float(s_line[-1])
    heading0 = math.atan2(xy[1, 1] - xy[0, 1], xy[1, 0] - xy[0, 0])
    v0 = 0.0 if standing_start else float(speed[0])
    sim.reset_cars(np.zeros(1, dtype=np.intp), [xy[0, 0]], [xy[0, 1]], [heading0], [track], speed_mps=[v0])
    dt = 1.0 / limits.control_hz
    idx, travelled_m, prev_s = 0, 0.0, 0.0
    max_err, off_steps, understeer_steps = 0.0, 0, 0
    max_steps = int(max_laps_time_factor * line.standing_start_lap_time_s / dt) + 10
    st = sim.states
    for step in range(max_steps):
        x, y, yaw, v = float(st.x_m[0]), float(st.y_m[0]), float(st.yaw_rad[0]), float(st.speed_mps[0])
        idx = _nearest_index(xy, x, y, idx)
        # Distance along the line of the car's projection onto the segment after the nearest point.
        seg = xy[(idx + 1) % n] - xy[idx]
        seg_len2 = max(float(seg @ seg), 1e-12)
        u = float(np.clip(((x - xy[idx, 0]) * seg[0] + (y - xy[idx, 1]) * seg[1]) / seg_len2, -1.0, 1.0))
        s_car = float(s_line[idx]) + u * math.sqrt(seg_len2)
        ds = (s_car - prev_s + 0.5 * length_m) % length_m - 0.5 * length_m  # wrap-safe progress since the last step
        if step > 0:
            travelled_m += ds
            if travelled_m >= length_m:  # crossed the first point again: interpolate the crossing time
                over = (travelled_m - length_m) / max(ds, 1e-9)
                lap_time = float(st.time_s[0]) - over * dt
                return TrackedLap(lap_time, standing_start, max_err, off_steps, understeer_steps)
        prev_s = s_car
        # Pure pursuit on the car's centre, whose path curvature is tan(steering) / wheelbase.
        lookahead = max(MIN_LOOKAHEAD_M, LOOKAHEAD_S * v)
        target_s = (s_car + lookahead) % length_m
        j = int(np.searchsorted(s_line, target_s, side="right") - 1) % n
        frac = (target_s - s_line[j]) / max(s_line[j + 1] - s_line[j], 1e-12)
        tx, ty = xy[j] + frac * (xy[(j + 1) % n] - xy[j])
        alpha = math.atan2(ty - y, tx - x) - yaw
        dist = math.hypot(tx - x, ty - y)
        kappa = 2.0 * math.sin(alpha) / max(dist, 1e-6)
        steering = math.atan(kappa * limits.wheelbase_m)
        # Target speed: the profile where the car will be at the end of this period.
        ahead_s = (s_car + v * dt) % length_m
        k = int(np.searchsorted(s_line, ahead_s, side="right") - 1) % n
        w = (ahead_s - s_line[k]) / max(s_line[k + 1] - s_line[k], 1e-12)
        speed_cmd = float(speed[k] + w * (speed[(k + 1) % n] - speed[k]))
        error_m = math.hypot(xy[idx, 0] + u * seg[0] - x, xy[idx, 1] + u * seg[1] - y)
        speed_cmd *= max(MIN_SPEED_FACTOR, 1.0 - SLOWDOWN_PER_M * max(error_m - ERROR_DEADBAND_M, 0.0))
        st = sim.step(np.array([steering]), np.array([speed_cmd]))
        err = math.hypot(*(xy[_nearest_index(xy, float(st.x_m[0]), float(st.y_m[0]), idx)] - (st.x_m[0], st.y_m[0])))
        max_err = max(max_err, err)
        off_steps += int(not np.all(track.on_track(st.wheel_positions_m[0])))
        understeer_steps += int(sim.understeer[0])
    raise RuntimeError(f"the tracking controller did not complete a lap of '{track.name}' in {max_steps} steps")
