"""Tracks from CARLA map waypoints (fake map: a 30 m-radius loop, 4 m lane), and a live-server check."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest

from control.carla.backend import CarlaSimulator
from control.carla.config import validate_carla_config
from control.carla.track_from_map import track_from_route
from control.errors import ConfigError
from control.sim.base import Pose
from control.track.track import Track
from tests import fake_carla as fc


@pytest.fixture(autouse=True)
def fresh_fake():
    fc._reset_all()
    yield
    fc._reset_all()


def fake_map():
    return fc.Client().get_world().get_map()


def route(**kwargs) -> dict:
    return validate_carla_config({"route": kwargs})["route"]


def test_loop_from_the_first_spawn_point_closes_with_lane_width_as_track_width():
    track = track_from_route(fake_map(), route(spacing_m=1.5), fc)
    assert track.length_m == pytest.approx(2 * math.pi * fc.ROAD_RADIUS_M, rel=0.02)
    assert np.allclose(track.width_m, fc.LANE_WIDTH_M)
    radius = np.hypot(*track.center_m.T)
    assert np.allclose(radius, fc.ROAD_RADIUS_M, atol=1e-6)


def test_route_through_points_is_closed_and_in_the_right_handed_frame():
    # CARLA (x, y) points; the Track stores (x, -y).
    track = track_from_route(fake_map(), route(points=[[30, 0], [0, 30], [-30, 0], [0, -30]]), fc)
    assert track.length_m == pytest.approx(2 * math.pi * fc.ROAD_RADIUS_M, rel=0.03)
    second_quarter = track.center_m[np.argmin(np.hypot(*(track.center_m - [0, -30]).T))]
    assert second_quarter == pytest.approx([0, -30], abs=1.5)


def test_route_saved_as_deepracer_npy_loads_back_for_the_builtin_simulator(tmp_path):
    path = tmp_path / "town.npy"
    sim = CarlaSimulator({"avoid_server_init": True, "save_track": str(path)}, None, run_name="t", runner_index=0,
                         is_evaluation=False, control_hz=15.0, carla_module=fc)
    track = sim.load_track()
    loaded = Track.from_npy(path)
    assert np.load(path).shape == (track.num_waypoints + 1, 6)
    assert np.allclose(loaded.center_m, track.center_m) and np.allclose(loaded.width_m, track.width_m)
    sim.close()


def test_a_loop_that_never_closes_is_a_config_error():
    with pytest.raises(ConfigError, match="did not return to the start within 50 m"):
        track_from_route(fake_map(), route(max_length_m=50.0), fc)


def test_track_file_placed_on_the_map_uses_the_offset(tmp_path):
    # A 30 m circle in the track frame, its origin shifted by (5, -2) m in the right-handed world frame.
    theta = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    Track(np.c_[30 * np.cos(theta), 30 * np.sin(theta)], 4.0, name="ring").to_npy(tmp_path / "ring.npy")
    sim = CarlaSimulator({"avoid_server_init": True, "track_file": str(tmp_path / "ring.npy"),
                          "track_offset_m": [5.0, -2.0]}, None, run_name="t", runner_index=0, is_evaluation=False,
                         control_hz=15.0, carla_module=fc)
    assert sim.track.name == "ring"
    state = sim.reset(Pose(25.0, 2.0, -math.pi / 2))
    assert (state.x_m, state.y_m) == pytest.approx((25.0, 2.0))
    (vehicle,) = [a for a in fc._get_server().actors.values() if a.type_id.startswith("vehicle.")]
    assert (vehicle._transform.location.x, vehicle._transform.location.y) == pytest.approx((30.0, 0.0))
    sim.close()


@pytest.mark.skipif(not os.environ.get("CARLA_HOST"),
                    reason="CARLA_HOST is not set: no live CARLA server to test against (set CARLA_HOST[/CARLA_PORT])")
def test_live_carla_server_route_reset_and_steps():
    carla = pytest.importorskip("carla")
    cfg = {"avoid_server_init": True, "host": os.environ["CARLA_HOST"], "port": int(os.environ.get("CARLA_PORT", 2000)),
           "map": os.environ.get("CARLA_MAP", "Town04"), "camera": {"width_px": 64, "height_px": 48}}
    sim = CarlaSimulator(cfg, None, run_name="live-test", runner_index=0, is_evaluation=False, control_hz=15.0,
                         carla_module=carla)
    try:
        track = sim.load_track()
        (pos,), (heading,) = track.point_at(0.0)
        state = sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))
        assert track.on_track(np.array([[state.x_m, state.y_m]]))[0]
        for _ in range(30):
            state = sim.step(0.0, 3.0)
        assert state.speed_mps > 0.5
        assert sim.camera_image().shape == (48, 64, 3)
    finally:
        sim.close()


def test_track_source_env_uses_the_given_track_without_starting_a_server():
    given = Track.load("oval")
    sim = CarlaSimulator({"avoid_server_init": True, "track_source": "env"}, given, run_name="t", runner_index=0,
                         is_evaluation=False, control_hz=15.0, carla_module=fc)
    assert sim.track is given
    assert fc._SERVERS == {}  # answering `track` did not connect
    sim.close()
