"""The built-in DeepRacer-style reward functions."""
import pytest

from control.env.rewards import BUILTIN_REWARDS, center_line_speed, follow_center_line, progress_per_step

WAYPOINTS = [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0)]


def params(**overrides):
    base = {"track_width": 1.0, "distance_from_center": 0.0, "speed": 2.0, "heading": 0.0, "waypoints": WAYPOINTS,
            "closest_waypoints": [0, 1], "progress": 10.0, "steps": 20}
    return {**base, **overrides}


def total(components):
    return sum(components.values())


def test_follow_center_line_bands():
    assert total(follow_center_line(params(distance_from_center=0.05))) == 1.0
    assert total(follow_center_line(params(distance_from_center=0.2))) == 0.5
    assert total(follow_center_line(params(distance_from_center=0.4))) == 0.1
    assert total(follow_center_line(params(distance_from_center=0.6))) == pytest.approx(1e-3)


def test_progress_per_step_rewards_a_faster_lap():
    assert total(progress_per_step(params(progress=50, steps=50))) > total(progress_per_step(params(progress=50, steps=100)))
    assert progress_per_step(params(progress=100, steps=100))["lap_bonus"] > 0


def test_center_line_speed_pays_only_for_speed_along_the_track():
    assert total(center_line_speed(params(speed=0.0))) == 0.0  # standing still earns nothing
    assert total(center_line_speed(params(speed=4.0))) > total(center_line_speed(params(speed=2.0)))
    assert total(center_line_speed(params(heading=180.0))) == 0.0  # driving the wrong way earns nothing
    assert total(center_line_speed(params(distance_from_center=0.0))) > total(center_line_speed(params(distance_from_center=0.4)))
    assert total(center_line_speed(params(speed=4.0))) == pytest.approx(1.5)


def test_registry_names():
    assert set(BUILTIN_REWARDS) == {"follow_center_line", "progress_per_step", "center_line_speed"}
