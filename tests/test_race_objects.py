"""Objects on the track (control/sim/objects.py): placement, bots, collisions, ray hits and DeepRacer's object params."""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.config_schema import parse_section
from control.errors import ConfigError
from control.sim.objects import (
    RaceConfig,
    RaceObjects,
    object_params,
    ray_rectangle_distances,
    rectangles_overlap,
)
from control.track.track import Track

DT_S = 1 / 15


def _rectangle_track() -> Track:
    """A counter-clockwise 20 m x 10 m rectangle, 1 m wide, waypoints every 0.5 m: 60 m, inside on the left."""
    corners = [(0.0, 0.0), (20.0, 0.0), (20.0, 10.0), (0.0, 10.0), (0.0, 0.0)]
    points = []
    for (x0, y0), (x1, y1) in zip(corners[:-1], corners[1:], strict=True):
        steps = int(round(math.hypot(x1 - x0, y1 - y0) / 0.5))
        points += [(x0 + (x1 - x0) * k / steps, y0 + (y1 - y0) * k / steps) for k in range(steps)]
    return Track(np.array(points), width_m=1.0, name="rectangle")


def _objects(track: Track, **race) -> RaceObjects:
    return RaceObjects(parse_section(RaceConfig, race, "env_config.race"), track, num_envs=1)


def _two_boxes(track: Track) -> RaceObjects:
    """Box 0 at 10 % of the lap in the inner lane (6, 0.25); box 1 at 70 % in the outer lane (8, 10.25)."""
    objects = _objects(track, type="object_avoidance", positions=[[0.1, 1], [0.7, -1]])
    objects.reset([0], [np.random.default_rng(0)], np.array([0.0]))
    return objects


def test_params_of_an_obstacle_straight_ahead_in_the_inner_lane():
    track = _rectangle_track()
    objects = _two_boxes(track)
    p = object_params(objects, np.array([2.0]), np.array([0.0]), np.array([0.0]), np.array([2.0])).car_dict(0)
    assert p["closest_objects"] == [1, 0]  # behind: box 1 (40 m on, i.e. 20 m back); ahead: box 0, 4 m on
    np.testing.assert_allclose(p["objects_location"], [(6.0, 0.25), (8.0, 10.25)], atol=1e-9)
    assert p["objects_left_of_center"] == [True, False]
    np.testing.assert_allclose(p["objects_distance"], [6.0, 42.0], atol=1e-9)
    np.testing.assert_allclose(p["objects_distance_from_center"], [0.25, 0.25], atol=1e-9)
    np.testing.assert_allclose(p["objects_heading"], [0.0, 180.0], atol=1e-9)
    assert p["objects_speed"] == [0.0, 0.0]
    assert p["object_in_camera"] is True
    # Past box 0 the order turns: box 0 is behind, box 1 ahead, and a car facing away sees nothing ahead.
    past = object_params(objects, np.array([10.0]), np.array([0.0]), np.array([math.pi]), np.array([10.0])).car_dict(0)
    assert past["closest_objects"] == [0, 1]
    assert past["object_in_camera"] is False
    # One object is both the one behind and the one ahead (DeepRacer: both indices 0).
    single = _objects(track, type="object_avoidance", positions=[[0.5, 1]])
    single.reset([0], [np.random.default_rng(0)], np.array([0.0]))
    one = object_params(single, np.array([2.0]), np.array([0.0]), np.array([0.0]), np.array([2.0])).car_dict(0)
    assert one["closest_objects"] == [0, 0]


def test_time_trial_params_stay_empty():
    objects = _objects(_rectangle_track())
    objects.reset([0], [np.random.default_rng(0)], np.array([0.0]))
    p = object_params(objects, np.array([2.0]), np.array([0.0]), np.array([0.0]), np.array([2.0])).car_dict(0)
    assert p["closest_objects"] == [] and p["objects_location"] == [] and p["objects_distance"] == []


def test_ray_hits_a_box_at_the_analytic_distance():
    track = _rectangle_track()
    x, y, yaw, half_l, half_w = _two_boxes(track).rectangles()
    angles = np.array([[0.0, math.pi / 2, math.atan2(0.1, 3.85)]])  # ahead, sideways, near the face's top edge
    d = ray_rectangle_distances(np.array([[2.0, 0.25]]), angles, x, y, yaw, half_l, half_w, max_range_m=10.0)
    assert d[0, 0] == pytest.approx(6.0 - 0.15 - 2.0)  # the box's near face
    assert d[0, 1] == 10.0  # misses: the range cap
    assert d[0, 2] == pytest.approx(math.hypot(3.85, 0.1))  # the near face 0.1 m above the box's centre line
    # A box turned 45 degrees shows its corner: half-diagonal sqrt(2) * 0.5 before its centre.
    turned = ray_rectangle_distances(np.array([[0.0, 0.0]]), np.array([[0.0]]), np.array([[3.0]]), np.array([[0.0]]),
                                     np.array([[math.pi / 4]]), np.array([[0.5]]), np.array([[0.5]]), max_range_m=10.0)
    assert turned[0, 0] == pytest.approx(3.0 - math.sqrt(2) * 0.5)


def test_car_footprint_on_a_box_collides_and_beside_it_does_not():
    track = _rectangle_track()
    boxes = _two_boxes(track).rectangles()
    # Car 0 noses into box 0 (front at 5.9 m, box face at 5.85 m); car 1 passes it in the outer lane.
    hit = rectangles_overlap(np.array([5.7, 6.0]), np.array([0.25, -0.25]), np.zeros(2), 0.2, 0.125,
                             *(np.repeat(b, 2, axis=0) for b in boxes))
    assert hit[:, 0].tolist() == [True, False]
    assert not hit[:, 1].any()
    # Bounding boxes overlap but the turned box's edge separates them: only the rectangles' own axes tell.
    diamond = (np.array([[0.0]]), np.array([[0.0]]), np.array([[math.pi / 4]]), np.array([[0.5]]), np.array([[0.5]]))
    assert not rectangles_overlap(np.array([0.6]), np.array([0.6]), np.zeros(1), 0.1, 0.1, *diamond)[0, 0]
    assert rectangles_overlap(np.array([0.3]), np.array([0.3]), np.zeros(1), 0.1, 0.1, *diamond)[0, 0]


def test_bots_keep_their_lane_and_speed_without_lane_changes():
    track = _rectangle_track()
    objects = _objects(track, type="head_to_bot", num_bots=3, bot_speed_mps=1.0, lane_changes=False, min_distance_m=0.5)
    objects.reset([0], [np.random.default_rng(3)], np.array([0.0]))
    lanes = objects.current_lane(np.zeros(1)).copy()
    objects.state.s_m[0] = [1.0, 2.0, 3.0]  # all on the bottom straight for the next second
    objects.state.lateral_m[0] = lanes[0] * 0.25
    objects.refresh_poses()
    x0, y0, _ = (a.copy() for a in objects.poses())
    for k in range(15):
        objects.step(np.array([(k + 1) * DT_S]), DT_S)
    x1, y1, _ = objects.poses()
    np.testing.assert_allclose(np.hypot(x1 - x0, y1 - y0), 1.0, atol=1e-9)  # 15 steps at 1 m/s, 15 Hz
    np.testing.assert_allclose(y1, y0, atol=1e-12)
    assert (objects.current_lane(np.array([1.0])) == lanes).all()


def test_bots_change_lanes_only_within_the_interval():
    track = _rectangle_track()
    objects = _objects(track, type="head_to_bot", num_bots=3, lane_change_s=[1.0, 2.0], min_distance_m=0.5)
    objects.reset([0], [np.random.default_rng(5)], np.array([0.0]))
    lanes, sides = [], []
    for k in range(300):  # 20 s
        objects.step(np.array([(k + 1) * DT_S]), DT_S)
        lanes.append(objects.current_lane(np.array([(k + 1) * DT_S]))[0].copy())
        sides.append(np.sign(objects.state.lateral_m[0]) * 1.0)  # inside is left on this track
    lanes, sides = np.array(lanes), np.array(sides)
    for bot in range(3):
        switches = (np.flatnonzero(np.diff(lanes[:, bot]) != 0) + 1) * DT_S + DT_S
        gaps = np.diff(np.r_[0.0, switches])
        assert len(switches) >= 9  # 20 s at one change per 1-2 s
        assert gaps.min() >= 1.0 - DT_S - 1e-9 and gaps.max() <= 2.0 + DT_S + 1e-9
    # The bots drive over to the lane they change to: 0.5 m sideways at 0.5 m/s takes a second.
    steady = np.array([[(lanes[max(0, k - 15):k + 1, b] == lanes[k, b]).all() and k >= 15 for b in range(3)] for k in range(300)])
    assert steady.any()
    assert (sides[steady] == lanes[steady]).all()


def test_seeds_reproduce_placements_and_keep_the_spacing():
    track = _rectangle_track()

    def place(seed: int, start_s_m: float = 0.0) -> np.ndarray:
        objects = _objects(track, type="object_avoidance", num_obstacles=6, min_distance_m=5.0)
        objects.reset([0], [np.random.default_rng(seed)], np.array([start_s_m]))
        return np.c_[objects.state.s_m[0], objects.state.start_lane[0]]

    np.testing.assert_array_equal(place(11), place(11))
    assert not np.array_equal(place(11), place(12))
    s = np.sort(np.r_[place(13, start_s_m=30.0)[:, 0], 30.0])  # the car's start counts as an object
    gaps = np.diff(np.r_[s, s[0] + track.length_m])
    assert gaps.min() >= 5.0 - 1e-9
    with pytest.raises(ConfigError, match="do not fit"):
        _objects(track, type="object_avoidance", num_obstacles=12, min_distance_m=5.0).reset(
            [0], [np.random.default_rng(0)], np.array([0.0]))


def test_placements_kept_between_episodes_unless_randomized():
    track = _rectangle_track()
    for randomize, same in ((False, True), (True, False)):
        objects = _objects(track, type="object_avoidance", randomize_each_episode=randomize)
        rng = np.random.default_rng(2)
        objects.reset([0], [rng], np.array([0.0]))
        first = objects.state.s_m.copy()
        objects.reset([0], [rng], np.array([0.0]))
        assert np.array_equal(first, objects.state.s_m) == same


def test_bad_positions_are_a_one_line_error():
    with pytest.raises(ConfigError, match=r"env_config\.race\.positions: positions\[1\] is \[0\.5, 0\]"):
        parse_section(RaceConfig, {"type": "object_avoidance", "positions": [[0.1, 1], [0.5, 0]]}, "env_config.race")
    with pytest.raises(ConfigError, match="did you mean 'head_to_bot'"):
        parse_section(RaceConfig, {"type": "head_to_bots"}, "env_config.race")


def _deepracer_object_avoidance_reward(params):
    """DeepRacer's documented object-avoidance example, in its own style (reads closest_objects and the lanes)."""
    all_wheels_on_track = params["all_wheels_on_track"]
    distance_from_center = params["distance_from_center"]
    track_width = params["track_width"]
    objects_distance = params["objects_distance"]
    _, next_object_index = params["closest_objects"]
    objects_left_of_center = params["objects_left_of_center"]
    is_left_of_center = params["is_left_of_center"]
    reward = 1e-3
    reward_lane = 1.0 if all_wheels_on_track and (0.5 * track_width - distance_from_center) >= 0.05 else 1e-3
    reward_avoid = 1.0
    distance_closest_object = objects_distance[next_object_index]
    is_same_lane = objects_left_of_center[next_object_index] == is_left_of_center
    if is_same_lane:
        if 0.5 <= distance_closest_object < 0.8:
            reward_avoid *= 0.5
        elif 0.3 <= distance_closest_object < 0.5:
            reward_avoid *= 0.2
        elif distance_closest_object < 0.3:
            reward_avoid = 1e-3
    reward += 1.0 * reward_lane + 4.0 * reward_avoid
    return reward


def test_deepracer_object_avoidance_reward_runs_on_the_params():
    track = _rectangle_track()
    objects = _objects(track, type="object_avoidance", positions=[[0.01, 1], [0.7, -1]])  # box 0 at s = 0.6 m, inner lane
    objects.reset([0], [np.random.default_rng(0)], np.array([0.0]))
    rewards = {}
    for lane_y in (0.25, -0.25):  # the car in the box's lane, then in the other one
        params = {"all_wheels_on_track": True, "distance_from_center": 0.25, "track_width": 1.0,
                  "is_left_of_center": lane_y > 0, "x": 0.1, "y": lane_y, "heading": 0.0}
        params.update(object_params(objects, np.array([0.1]), np.array([lane_y]), np.zeros(1), np.array([0.1])).car_dict(0))
        rewards[lane_y > 0] = _deepracer_object_avoidance_reward(params)
    assert rewards[False] == pytest.approx(1e-3 + 1.0 + 4.0)
    assert rewards[True] == pytest.approx(1e-3 + 1.0 + 4.0 * 0.5)  # same lane, box 0.6 m from the start line


# ------------------------------------------------------------------ in the env
def _forward(speed_mps: float = 1.0) -> np.ndarray:
    """The continuous action for straight ahead at speed_mps (the default ranges: ±30°, 0.5-4 m/s)."""
    return np.array([0.0, 2 * (speed_mps - 0.5) / 3.5 - 1], dtype=np.float32)


def _drive_straight(tmp_path, race: dict, steps: int = 150, reward: str = "follow_center_line"):
    from control.env.racing_env import RacingEnv

    path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    env = RacingEnv({"track": str(path), "start": {"mode": "fixed"}, "race": race, "reward": reward})
    env.reset(seed=0)
    for _ in range(steps):
        _, reward_value, terminated, truncated, info = env.step(_forward())
        assert math.isfinite(reward_value)
        if terminated or truncated:
            break
    return env, info


def test_a_car_driven_into_a_box_ends_crashed(tmp_path):
    # The car starts on the centerline at (0, 0) heading +x; a 0.5 m wide box in the inner lane spans y 0..0.5 at x = 6.
    env, info = _drive_straight(tmp_path, {"type": "object_avoidance", "positions": [[0.1, 1]], "box_width_m": 0.5})
    assert info["episode_status"] == "crashed" and info["params"]["is_crashed"]
    assert 5.0 < info["params"]["x"] < 6.0  # stopped at the box's face, the car's nose in it
    # A narrower box (y 0.15..0.35) leaves room beside it: the car drives past.
    env, info = _drive_straight(tmp_path, {"type": "object_avoidance", "positions": [[0.1, 1]], "box_width_m": 0.2}, steps=110)
    assert info["episode_status"] == "in_progress" and not info["params"]["is_crashed"]
    assert info["params"]["x"] > 6.5
    assert info["params"]["closest_objects"] == [0, 0] and info["params"]["objects_distance"] == pytest.approx([6.0])


def test_a_deepracer_object_avoidance_reward_file_runs_in_the_env(tmp_path):
    import inspect
    import textwrap

    source = textwrap.dedent(inspect.getsource(_deepracer_object_avoidance_reward)).replace("_deepracer_object_avoidance_reward", "reward_function")
    reward_file = tmp_path / "object_avoidance_reward.py"
    reward_file.write_text(source)
    env, info = _drive_straight(tmp_path, {"type": "object_avoidance", "positions": [[0.5, 1], [0.9, -1]]}, steps=20,
                                reward=str(reward_file))
    assert info["episode_status"] == "in_progress"
    assert info["params"]["closest_objects"] == [1, 0]


def test_time_trials_keep_empty_object_params_and_bad_race_settings_are_one_line(tmp_path):
    from control.env.config import validate_env_config
    from control.env.racing_env import RacingEnv

    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}})
    env.reset(seed=0)
    _, _, _, _, info = env.step(_forward())
    assert info["params"]["closest_objects"] == [] and info["params"]["objects_location"] == []
    with pytest.raises(ConfigError, match="env_config.race.num_bots must be a whole number >= 0"):
        validate_env_config({"race": {"type": "head_to_bot", "num_bots": -1}})
    with pytest.raises(ConfigError, match="needs the builtin simulator, one track"):
        validate_env_config({"race": {"type": "head_to_bot"}, "track": ["oval", "speedway"]})


def test_bots_and_crashes_do_not_depend_on_the_batch_size():
    from control.env.vector_env import RacingVectorEnv

    config = {"track": "oval", "race": {"type": "head_to_bot", "bot_speed_mps": 0.8, "lane_change_s": [1.0, 2.0]}}
    small, big = RacingVectorEnv(config, num_envs=1), RacingVectorEnv(config, num_envs=4)
    small.reset(seed=9)
    big.reset(seed=9)
    rng = np.random.default_rng(1)
    statuses = set()
    for _ in range(120):  # with autoresets: new placements come from each car's own generator
        actions = rng.uniform(-1, 1, (4, 2)).astype(np.float32)
        _, _, term_a, _, info_a = small.step(actions[:1])
        _, _, term_b, _, info_b = big.step(actions)
        np.testing.assert_array_equal(small.race.race_objects.state.s_m[0], big.race.race_objects.state.s_m[0])
        np.testing.assert_array_equal(small.race.race_objects.state.lateral_m[0], big.race.race_objects.state.lateral_m[0])
        assert (term_a[0], info_a["episode_status"][0]) == (term_b[0], info_b["episode_status"][0])
        statuses.update(info_b["episode_status"].tolist())
    assert "in_progress" in statuses


def test_lidar_rays_stop_at_a_box(tmp_path):
    from control.env.racing_env import RacingEnv

    path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    config = {"track": str(path), "start": {"mode": "fixed", "waypoint": 4}, "observation": {"type": "vlidar", "angles_deg": [0, 90],
              "max_range_m": 10.0, "ego_features": False}}
    # The car at (2, 0) heading +x; a box spanning y -0.15..0.65 with its near face at x = 5.85.
    boxed = RacingEnv({**config, "race": {"type": "object_avoidance", "positions": [[0.1, 1]], "box_width_m": 0.8}})
    obs, _ = boxed.reset(seed=0)
    assert obs[0] == pytest.approx(0.385, abs=1e-6)  # 3.85 m of 10
    assert obs[1] == pytest.approx(0.05, abs=1e-6)  # sideways: the border 0.5 m to the left, as without the box
    plain, _ = RacingEnv(config).reset(seed=0)
    assert plain[0] == pytest.approx(1.0) and plain[1] == pytest.approx(0.05, abs=1e-6)
