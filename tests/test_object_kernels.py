"""The race objects' fused kernels (control/sim/objects.py) against the reference paths they replace on the step and reset path.

Each test draws random poses and objects and asks for the same numbers, bit for bit: the env's episodes must not change
when the objects' cost is cut.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.config_schema import parse_section
from control.sim.base import CameraSpec
from control.sim.camera import frustum_constants
from control.sim.objects import (
    _MAX_LANE_CHANGES,
    RaceConfig,
    RaceObjects,
    lower_rays_to_objects,
    mark_collisions,
    object_params,
    poses,
    ray_rectangle_distances,
    rectangles_overlap,
    spaced_distances_m,
)
from tests.test_race_objects import _rectangle_track as rectangle_track

NUM_ENVS = 200


def _scattered_objects(rng: np.random.Generator, race_type: str = "object_avoidance", num: int = 6, side_m: float = 6.0) -> RaceObjects:
    """NUM_ENVS envs whose objects have random poses and sizes in a side_m square (cars are dropped in it too)."""
    key = "num_obstacles" if race_type == "object_avoidance" else "num_bots"
    objects = RaceObjects(parse_section(RaceConfig, {"type": race_type, key: num}, "env_config.race"), rectangle_track(), NUM_ENVS)
    st = objects.state
    shape = st.x_m.shape
    st.x_m[:], st.y_m[:] = rng.uniform(0.0, side_m, shape), rng.uniform(0.0, side_m, shape)
    st.yaw_rad[:] = rng.uniform(-math.pi, math.pi, shape)
    st.half_length_m[:], st.half_width_m[:] = rng.uniform(0.05, 0.4, shape), rng.uniform(0.05, 0.3, shape)
    return objects


def _cars(rng: np.random.Generator, side_m: float = 6.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rng.uniform(0.0, side_m, NUM_ENVS), rng.uniform(0.0, side_m, NUM_ENVS), rng.uniform(-math.pi, math.pi, NUM_ENVS)


RAY_FANS_DEG = {
    "vlidar default": np.linspace(-90.0, 90.0, 32),
    "full circle, 1 degree apart": np.linspace(-180.0, 180.0, 361),
    "unsorted, beyond a turn": np.random.default_rng(7).uniform(-400.0, 400.0, 50),
}


@pytest.mark.parametrize("fan", RAY_FANS_DEG)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sensor_rays_stop_at_the_same_object_hits_as_the_reference(seed, fan):
    rng = np.random.default_rng(seed)
    objects = _scattered_objects(rng)
    x, y, yaw = _cars(rng)
    yaw[::3] *= 4.0  # headings beyond +-pi (a car that turned round) wrap the same
    max_range_m = 5.0
    angles_rad = np.radians(RAY_FANS_DEG[fan])
    num_rays = len(angles_rad)
    border_m = rng.uniform(0.0, max_range_m, (NUM_ENVS, num_rays))  # what the border kernel read
    border_m[::7] = max_range_m  # some cars see no border at all
    rows = rng.permutation(NUM_ENVS)[: NUM_ENVS // 2].astype(np.intp)  # a subset, out of order (reset rows)
    obs = np.zeros((len(rows), num_rays + 2), dtype=np.float32)
    obs[:, :num_rays] = border_m[rows] / max_range_m
    obs[:, num_rays:] = 0.5  # ego features stay as they were
    distances_m = border_m.copy()
    lower_rays_to_objects(objects, rows, x, y, yaw, angles_rad, max_range_m, distances_m, obs)

    hit_m = ray_rectangle_distances(np.stack((x[rows], y[rows]), axis=1), yaw[rows, None] + angles_rad, *objects.rectangles(),
                                    max_range_m, rows=rows)
    expected_m = np.minimum(border_m[rows], hit_m)
    assert (expected_m < border_m[rows]).sum() > 50  # the draw has real hits to compare
    np.testing.assert_array_equal(distances_m[rows], expected_m)
    untouched = np.setdiff1d(np.arange(NUM_ENVS), rows)
    np.testing.assert_array_equal(distances_m[untouched], border_m[untouched])
    np.testing.assert_array_equal(obs[:, :num_rays], (expected_m / max_range_m).astype(np.float32))
    assert (obs[:, num_rays:] == 0.5).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collisions_mark_the_cars_the_overlap_test_finds(seed):
    rng = np.random.default_rng(seed)
    objects = _scattered_objects(rng, "head_to_bot", 3, side_m=2.0)
    x, y, yaw = _cars(rng, side_m=2.0)
    expected = rectangles_overlap(x, y, yaw, 0.2, 0.125, *objects.rectangles()).any(axis=1)
    assert 10 < expected.sum() < NUM_ENVS - 10  # both outcomes occur
    crashed = np.zeros(NUM_ENVS, dtype=bool)
    crashed[:5] = True  # already crashed (the backend's own crash): stays crashed
    mark_collisions(objects, x, y, yaw, 0.2, 0.125, crashed)
    np.testing.assert_array_equal(crashed[5:], expected[5:])
    assert crashed[:5].all()


def _reference_placement(config: RaceConfig, length_m: float, rng: np.random.Generator, start_s_m: float) -> dict[str, np.ndarray]:
    """The one-by-one draws the reset used to make: spacing, lanes, then lane-change times (numpy's uniform and cumsum)."""
    m = config.num_obstacles if config.type == "object_avoidance" else config.num_bots
    out = {"s_m": spaced_distances_m(rng, m, length_m, start_s_m, config.min_distance_m),
           "start_lane": np.where(rng.random(m) < 0.5, -1.0, 1.0)}
    if config.type == "head_to_bot" and config.lane_changes:
        low, high = config.lane_change_s
        out["lane_change_at_s"] = np.cumsum(rng.uniform(low, high, size=(m, _MAX_LANE_CHANGES)), axis=1)
    return out


@pytest.mark.parametrize("race", [{"type": "object_avoidance", "num_obstacles": 6, "min_distance_m": 1.5},
                                  {"type": "head_to_bot", "num_bots": 3, "lane_change_s": [2.5, 7.0]},
                                  {"type": "head_to_bot", "num_bots": 2, "lane_changes": False}])
def test_reset_places_the_objects_the_one_by_one_draws_placed(race):
    config = parse_section(RaceConfig, race, "env_config.race")
    track = rectangle_track()
    objects = RaceObjects(config, track, num_envs=8)
    rows = np.array([5, 1, 6], dtype=np.intp)
    starts = np.array([0.0, 17.3, 59.9])
    rngs = [np.random.default_rng(100 + k) for k in range(3)]
    objects.reset(rows, rngs, starts)
    st = objects.state
    for k, row in enumerate(rows.tolist()):
        reference_rng = np.random.default_rng(100 + k)
        expected = _reference_placement(config, track.length_m, reference_rng, float(starts[k]))
        np.testing.assert_array_equal(st.s_m[row], expected["s_m"])
        np.testing.assert_array_equal(st.start_lane[row], expected["start_lane"])
        if "lane_change_at_s" in expected:
            np.testing.assert_array_equal(st.lane_change_at_s[row], expected["lane_change_at_s"])
        elif config.type == "head_to_bot":
            assert np.isinf(st.lane_change_at_s[row]).all()
        # Each generator is left where the one-by-one draws left it: the car's next episode starts the same.
        assert rngs[k].random() == reference_rng.random()
    assert (st.s_m[[0, 2, 3, 4, 7]] == 0.0).all()  # envs not reset keep their (initial) places
    if config.type == "head_to_bot":
        assert (st.speed_mps[rows] == config.bot_speed_mps).all()


def test_object_params_follow_the_camera_they_are_asked_for():
    """The frustum is kept between calls; another camera (or another default fov) is not answered from the kept one."""
    track = rectangle_track()
    objects = RaceObjects(parse_section(RaceConfig, {"type": "object_avoidance", "positions": [[0.1, 1]]}, "env_config.race"), track, 1)
    objects.reset([0], [np.random.default_rng(0)], np.array([0.0]))
    # The box sits at (6, 0.25): 4 m ahead, 0.25 m to the left; a car turned 20 degrees right sees it only with a wide lens.
    car = (np.array([2.0]), np.array([0.0]), np.array([-math.radians(20.0)]), np.array([2.0]))
    wide, narrow = CameraSpec(fov_deg=120.0), CameraSpec(fov_deg=20.0)
    assert object_params(objects, *car, camera=wide).object_in_camera[0]
    assert not object_params(objects, *car, camera=narrow).object_in_camera[0]
    assert object_params(objects, *car, camera=wide).object_in_camera[0]
    assert not object_params(objects, *car, camera_fov_deg=20.0).object_in_camera[0]
    assert object_params(objects, *car, camera_fov_deg=120.0).object_in_camera[0]
    np.testing.assert_array_equal(objects.frustum(None, 120.0), frustum_constants(CameraSpec(fov_deg=120.0)))


def _bots_on_the_track(num_envs: int = 40) -> RaceObjects:
    config = parse_section(RaceConfig, {"type": "head_to_bot", "num_bots": 3, "min_distance_m": 3.0, "lane_change_s": [0.5, 1.5],
                                        "bot_speed_mps": 2.0}, "env_config.race")
    objects = RaceObjects(config, rectangle_track(), num_envs)
    objects.reset(np.arange(num_envs), [np.random.default_rng(k) for k in range(num_envs)], np.linspace(0.0, 55.0, num_envs))
    return objects


def test_bots_step_along_their_lanes_whatever_segment_they_are_told_they_were_on():
    """The segment each bot was on is only a hint: a wrong one (a pose written back by CARLA, a reset) gives the same step."""
    told, scrambled = _bots_on_the_track(), _bots_on_the_track()
    rng = np.random.default_rng(3)
    track = told.track
    for step in range(120):  # 8 s: laps wrap, lanes change
        scrambled._segment_hint[:] = rng.integers(-3, track.num_waypoints + 3, scrambled._segment_hint.shape)
        time_s = np.full(told.num_envs, (step + 1) * 1 / 15)
        told.step(time_s, 1 / 15)
        scrambled.step(time_s, 1 / 15)
        for name in ("s_m", "lateral_m", "x_m", "y_m", "yaw_rad", "lane_changes_done"):
            np.testing.assert_array_equal(getattr(told.state, name), getattr(scrambled.state, name), err_msg=name)
    st = told.state
    assert (st.lane_changes_done > 0).all()
    x, y, yaw = told.poses()
    ref_x, ref_y, ref_yaw = poses(track, st.s_m, st.lateral_m)
    np.testing.assert_allclose(x, ref_x, atol=1e-12)  # the numpy pose of the same lap distance and offset
    np.testing.assert_allclose(y, ref_y, atol=1e-12)
    np.testing.assert_array_equal(yaw, ref_yaw)


def test_object_headings_follow_yaws_written_from_outside():
    """Headings are kept between steps, but a yaw set from outside (a CARLA actor's pose read back) is read anew."""
    objects = _bots_on_the_track(6)
    car = tuple(np.zeros(6) for _ in range(4))

    def headings_deg() -> np.ndarray:
        return object_params(objects, *car).objects_heading_deg

    yaw = objects.state.yaw_rad
    yaw[4, 0] = 0.0
    np.testing.assert_allclose(headings_deg(), np.degrees(np.arctan2(np.sin(yaw), np.cos(yaw))), atol=1e-12)
    yaw[2, 1] = 3.0 * math.pi / 2  # -90 degrees once wrapped
    yaw[4, 0] = -0.0
    yaw[5, 2] = 0.25
    again = headings_deg()
    assert again[2, 1] == pytest.approx(-90.0)
    assert again[4, 0] == 0.0 and math.copysign(1.0, again[4, 0]) == -1.0  # the sign of zero is the yaw's
    assert again[5, 2] == pytest.approx(math.degrees(0.25))


def test_reset_with_configured_places_draws_nothing():
    """OBJECT_POSITIONS: every env gets the configured places and lanes, and its generator is not drawn from."""
    track = rectangle_track()
    config = parse_section(RaceConfig, {"type": "object_avoidance", "positions": [[0.1, 1], [0.7, -1], [0.45, 1]]}, "env_config.race")
    objects = RaceObjects(config, track, num_envs=4)
    rngs = [np.random.default_rng(k) for k in range(2)]
    objects.reset(np.array([2, 0]), rngs, np.array([5.0, 30.0]))
    st = objects.state
    for row in (0, 2):
        np.testing.assert_array_equal(st.s_m[row], [0.1 * track.length_m, 0.7 * track.length_m, 0.45 * track.length_m])
        np.testing.assert_array_equal(st.start_lane[row], [1.0, -1.0, 1.0])
    assert (st.s_m[[1, 3]] == 0.0).all()
    assert [g.random() for g in rngs] == [np.random.default_rng(k).random() for k in range(2)]
