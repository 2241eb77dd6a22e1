"""Lap-time reference: analytic values on circles and a stadium, periodicity, sim agreement."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from control.errors import ConfigError
from control.sim.base import DEEPRACER_LIMITS, Pose, VehicleLimits
from control.sim.builtin import DEFAULT_BUILTIN_CONFIG, BuiltinSimulator
from control.sim.lap_time import lap_time_reference, reference_for_env_config
from control.track.track import Track

G = 9.81


def car(**limits: float) -> VehicleLimits:
    """DeepRacer's car with some limits changed."""
    return dataclasses.replace(DEEPRACER_LIMITS, **limits)


def circle_track(radius_m: float, n: int = 400, width_m: float = 1.0) -> Track:
    """A counter-clockwise circle of `n` waypoints."""
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return Track(np.c_[radius_m * np.cos(t), radius_m * np.sin(t)], width_m=width_m, name="circle")


def stadium_track(straight_m: float, radius_m: float, spacing_m: float = 0.02) -> Track:
    """Two straights joined by two semicircles, counter-clockwise, waypoints every `spacing_m`."""
    n_s = int(round(straight_m / spacing_m))
    n_a = int(round(np.pi * radius_m / spacing_m))
    xs = np.linspace(0.0, straight_m, n_s, endpoint=False)
    a = np.linspace(-np.pi / 2, np.pi / 2, n_a, endpoint=False)
    parts = [
        np.c_[xs, np.full(n_s, -radius_m)],
        np.c_[straight_m + radius_m * np.cos(a), radius_m * np.sin(a)],
        np.c_[straight_m - xs, np.full(n_s, radius_m)],
        np.c_[-radius_m * np.cos(a), -radius_m * np.sin(a)],
    ]
    return Track(np.vstack(parts), width_m=1.0, name="stadium")


@pytest.mark.parametrize(
    ("radius_m", "mu"),
    [(1.0, 1.0), (1.0, 0.5), (2.0, 0.7), (3.0, 1.0)],  # the last one is capped by top speed
)
def test_circle_flying_lap_is_length_over_corner_speed(radius_m: float, mu: float) -> None:
    track = circle_track(radius_m)
    v_expected = min(4.0, math.sqrt(mu * G * radius_m))
    ref = lap_time_reference(track, car(max_speed_mps=4.0, max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=mu))
    assert ref.lap_time_s == pytest.approx(track.length_m / v_expected, rel=1e-9)
    np.testing.assert_allclose(ref.speed_profile_mps, v_expected, rtol=1e-9)
    assert ref.average_speed_mps == pytest.approx(v_expected, rel=1e-9)
    assert ref.track_length_m == pytest.approx(track.length_m)


def test_circle_standing_start_adds_acceleration_phase() -> None:
    track = circle_track(1.5)
    accel = 2.0
    v = math.sqrt(G * 1.5)
    ref = lap_time_reference(track, car(max_speed_mps=4.0, max_accel_mps2=accel, max_brake_mps2=6.0, friction_mu=1.0))
    # Accelerate to v in v/a seconds over v^2/(2a) metres, then hold v: L/v + v/(2a).
    expected = track.length_m / v + v / (2 * accel)
    assert ref.standing_start_lap_time_s == pytest.approx(expected, rel=2e-3)
    assert ref.standing_start_lap_time_s > ref.lap_time_s


def stadium_lap_time_s(straight_m: float, radius_m: float, v_max: float, accel: float, brake: float, mu: float) -> float:
    """Analytic flying lap of a stadium: corners at the grip speed, straights accelerate then brake."""
    v_c = min(v_max, math.sqrt(mu * G * radius_m))
    v_peak = math.sqrt(v_c**2 + 2 * straight_m * accel * brake / (accel + brake))
    t_straight = (v_peak - v_c) / accel + (v_peak - v_c) / brake
    if v_peak > v_max:  # cruise at top speed between the two phases
        d_acc = (v_max**2 - v_c**2) / (2 * accel)
        d_brk = (v_max**2 - v_c**2) / (2 * brake)
        t_straight = (v_max - v_c) / accel + (v_max - v_c) / brake + (straight_m - d_acc - d_brk) / v_max
    return 2 * t_straight + 2 * math.pi * radius_m / v_c


@pytest.mark.parametrize("v_max", [4.0, 2.5])
def test_stadium_matches_analytic_accelerate_brake_solution(v_max: float) -> None:
    track = stadium_track(straight_m=6.0, radius_m=0.8)
    limits = dict(max_speed_mps=v_max, max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=1.0)
    ref = lap_time_reference(track, car(**limits))
    expected = stadium_lap_time_s(6.0, 0.8, v_max, 3.0, 6.0, 1.0)
    # Discretisation: the curvature switches from 0 to 1/R within one waypoint (2 cm).
    assert ref.lap_time_s == pytest.approx(expected, rel=5e-3)


def test_profile_respects_every_limit() -> None:
    track = Track.load("hairpins")
    accel, brake = 3.0, 6.0
    ref = lap_time_reference(track, car(max_speed_mps=4.0, max_accel_mps2=accel, max_brake_mps2=brake, friction_mu=1.0))
    v = ref.speed_profile_mps
    v_next = np.roll(v, -1)
    ds = ref.segment_length_m
    assert np.all(v <= ref.corner_speed_limit_mps + 1e-12)
    assert np.all(v_next**2 - v**2 <= 2 * accel * ds + 1e-9)
    assert np.all(v**2 - v_next**2 <= 2 * brake * ds + 1e-9)
    assert np.all(np.abs(track.curvature_per_m()) * v**2 <= G + 1e-9)  # lateral acceleration <= mu g
    assert ref.lap_time_s >= track.length_m / 4.0
    assert ref.segment_time_s.sum() == pytest.approx(ref.lap_time_s)


def test_flying_lap_does_not_depend_on_the_start_waypoint() -> None:
    track = Track.load("hairpins")
    shifted = Track(np.roll(track.center_m, 97, axis=0), width_m=np.roll(track.width_m, 97), name="shifted")
    limits = dict(max_speed_mps=4.0, max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=1.0)
    a = lap_time_reference(track, car(**limits))
    b = lap_time_reference(shifted, car(**limits))
    assert a.lap_time_s == pytest.approx(b.lap_time_s, rel=1e-9)
    np.testing.assert_allclose(np.roll(a.speed_profile_mps, 97), b.speed_profile_mps, rtol=1e-9)


def test_more_grip_or_power_never_slows_the_lap() -> None:
    track = Track.load("hairpins")
    base = dict(max_speed_mps=4.0, max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=1.0)
    t0 = lap_time_reference(track, car(**base)).lap_time_s
    assert lap_time_reference(track, car(**{**base, "friction_mu": 1.5})).lap_time_s < t0
    assert lap_time_reference(track, car(**{**base, "max_accel_mps2": 5.0})).lap_time_s < t0
    assert lap_time_reference(track, car(**{**base, "friction_mu": 0.5})).lap_time_s > t0


def test_reference_for_env_config_uses_the_simulator_limits() -> None:
    track = circle_track(1.2)
    ref = reference_for_env_config(track, {"builtin": {"friction_mu": 0.8}})
    assert ref.lap_time_s == pytest.approx(track.length_m / math.sqrt(0.8 * G * 1.2), rel=1e-9)
    assert ref.limits["max_speed_mps"] == DEFAULT_BUILTIN_CONFIG["max_speed_mps"]
    assert ref.centerline_feasible
    # A 0.2 m circle is tighter than full steering lock (radius 0.165 / tan 30 deg = 0.29 m).
    assert not reference_for_env_config(circle_track(0.2)).centerline_feasible


def test_simulated_lap_at_the_grip_limit_takes_the_reference_time() -> None:
    radius_m = 1.2
    track = circle_track(radius_m, n=2000)
    ref = reference_for_env_config(track)
    v = float(ref.speed_profile_mps[0])
    sim = BuiltinSimulator(track)
    steer = math.atan(DEFAULT_BUILTIN_CONFIG["wheelbase_m"] / radius_m)
    state = sim.reset(Pose(radius_m, 0.0, math.pi / 2), speed_mps=v)
    yaw_travelled = 0.0
    while yaw_travelled < 2 * math.pi:
        prev_yaw = state.yaw_rad
        state = sim.step(steer, v)
        yaw_travelled += math.remainder(state.yaw_rad - prev_yaw, 2 * math.pi)
        assert math.hypot(state.x_m, state.y_m) == pytest.approx(radius_m, rel=1e-6)  # holds the line
    # The last step overshoots the full turn: interpolate the crossing time.
    overshoot_s = (yaw_travelled - 2 * math.pi) / (v / radius_m)
    assert state.time_s - overshoot_s == pytest.approx(ref.lap_time_s, rel=1e-4)


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="friction_mu"):
        lap_time_reference(circle_track(1.0), car(max_speed_mps=4.0, max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=0.0))
    with pytest.raises(ConfigError, match="unknown key 'friction'"):
        reference_for_env_config(circle_track(1.0), {"builtin": {"friction": 1.0}})


def test_the_reference_reads_the_car_the_backend_declares() -> None:
    """A slower car set in env_config.builtin (the backend's VehicleLimits) gives a slower reference."""
    track = Track.load("speedway")
    slow = reference_for_env_config(track, {"builtin": {"max_speed_mps": 2.0}})
    assert slow.limits["max_speed_mps"] == 2.0 and slow.lap_time_s > reference_for_env_config(track).lap_time_s


def test_the_track_layer_imports_nothing_above_it() -> None:
    """DESIGN.md: the track is geometry only; the lap-time reference (it needs a car) lives above it."""
    from control.tools.import_graph import import_graph

    graph = import_graph()
    for module, imports in graph.items():
        if module.startswith("control.track"):
            assert all(m.startswith(("control.track", "control.errors")) for m in imports), (module, imports)
