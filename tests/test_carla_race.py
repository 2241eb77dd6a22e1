"""Race types on CARLA (issue 12, item 5): boxes and bot cars as CARLA actors, against the contract-checked fake."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from control.carla.backend import CarlaSimulator
from control.env.config import validate_env_config
from control.env.racing_env import RacingEnv
from control.errors import ConfigError
from control.sim.base import Pose
from control.sim.objects import RaceObjects, object_params
from tests import fake_carla as fc

SLOW = np.array([0.0, -1.0], dtype=np.float32)  # straight ahead at the slowest speed
FAST = np.array([0.0, 1.0], dtype=np.float32)


@pytest.fixture(autouse=True)
def fresh_fake():
    fc._reset_all()
    fc._start_server(port=2000)
    yield
    fc._reset_all()


def carla_config(race: dict, **extra) -> dict:
    """An env config on the fake CARLA server (camera off unless `carla` says otherwise); `extra` replaces keys."""
    return {"simulator": "carla", "observation": {"type": "vlidar"}, "start": {"mode": "fixed"}, "race": race,
            "carla": {"_fake_module": "tests.fake_carla", "avoid_server_init": True, "timeout_s": 1.0,
                      "camera": {"enabled": False}}, **extra}


def our_actors() -> dict[int, fc.Actor]:
    """The race actors on the fake server (role_name race_*)."""
    return {i: a for i, a in fc._get_server().actors.items() if a.attributes.get("role_name", "").startswith("race_")}


def track_pose(actor: fc.Actor) -> tuple[float, float, float]:
    """An actor's pose in the env's right-handed track frame (the route's offset is zero)."""
    t = actor.get_transform()
    return t.location.x, -t.location.y, -math.radians(t.rotation.yaw)


def test_boxes_stand_at_the_placements_and_their_params_equal_the_builtin_ones(tmp_path):
    race = {"type": "object_avoidance", "num_obstacles": 4, "min_distance_m": 8.0, "box_length_m": 0.7, "box_width_m": 0.7}
    env = RacingEnv(carla_config(race))
    try:
        env.reset(seed=5)
        objects = env.race.race_objects
        boxes = sorted(our_actors().values(), key=lambda a: a.attributes["role_name"])
        assert [a.type_id for a in boxes] == ["static.prop.box01"] * 4
        placed = np.stack(objects.poses(), axis=-1)[0]
        assert np.allclose([track_pose(a) for a in boxes], placed, atol=1e-9)
        # Boxes sit on the lane lines: a quarter of the track width from the centerline, either side.
        track = env.race.driving_tracks[0]
        assert np.allclose(np.abs(objects.state.lateral_m[0]), 0.25 * track.width_m.mean(), atol=1e-6)
        carla_params = env.race.object_params()
        # The built-in simulator on the same track, with the same seed: same placements, same params.
        track.to_npy(str(tmp_path / "route.npy"))
        builtin = RacingEnv({"track": str(tmp_path / "route.npy"), "start": {"mode": "fixed"}, "race": race})
        builtin.reset(seed=5)
        builtin_params = builtin.race.object_params()
        assert np.allclose(builtin.race.race_objects.state.s_m, objects.state.s_m, atol=1e-6)
        for field in ("objects_location_m", "objects_distance_m", "objects_distance_from_center_m", "objects_heading_deg"):
            assert np.allclose(getattr(carla_params, field), getattr(builtin_params, field), atol=1e-5), field
        for field in ("closest_objects", "objects_left_of_center", "object_in_camera"):
            assert np.array_equal(getattr(carla_params, field), getattr(builtin_params, field)), field
        # A reward file's view of them after a step: the dict DeepRacer's reward functions read.
        _, _, _, _, info = env.step(SLOW)
        assert len(info["params"]["objects_location"]) == 4 and info["params"]["closest_objects"][1] in range(4)
    finally:
        env.close()


def test_object_footprints_come_from_the_actors_bounding_boxes():
    env = RacingEnv(carla_config({"type": "object_avoidance", "positions": [[0.3, 1], [0.6, -1]]},
                                 carla={"_fake_module": "tests.fake_carla", "avoid_server_init": True, "timeout_s": 1.0,
                                        "camera": {"enabled": False},
                                        "race_actors": {"box_blueprint": "static.prop.creasedbox01"}}))
    try:
        env.reset(seed=0)
        st = env.race.race_objects.state
        extent = fc.PROP_EXTENTS_M["static.prop.creasedbox01"]
        assert np.allclose(st.half_length_m, extent[0]) and np.allclose(st.half_width_m, extent[1])
        length = env.race.driving_tracks[0].length_m
        assert np.allclose(st.s_m[0], [0.3 * length, 0.6 * length])
    finally:
        env.close()


def test_bots_follow_the_builtin_lane_follower_at_bot_speed_with_its_lane_changes():
    race = {"type": "head_to_bot", "num_bots": 2, "bot_speed_mps": 2.0, "lane_change_s": [0.5, 1.0], "min_distance_m": 10.0}
    env = RacingEnv(carla_config(race))
    try:
        env.reset(seed=2)
        objects = env.race.race_objects
        track = env.race.driving_tracks[0]
        # The same bots advanced by the built-in's RaceObjects alone, from the CARLA env's placement.
        reference = RaceObjects(race, track, 1)
        for name in ("s_m", "lateral_m", "start_lane", "speed_mps", "lane_change_at_s", "x_m", "y_m", "yaw_rad"):
            setattr(reference.state, name, getattr(objects.state, name).copy())
        bots = sorted(our_actors().values(), key=lambda a: a.attributes["role_name"])
        assert [a.type_id for a in bots] == ["vehicle.audi.tt"] * 2
        steps, before = 45, np.array([track_pose(a)[:2] for a in bots])
        lateral_before = objects.state.lateral_m[0].copy()
        along_lane_mps = []
        for _ in range(steps):
            _, _, terminated, _, info = env.step(SLOW)
            assert not terminated and info["episode_status"] == "in_progress"
            reference.step(env.race.states.time_s, 1.0 / 15.0)
            actual = np.array([track_pose(a) for a in bots])
            assert np.allclose(actual[:, :2], np.stack([reference.state.x_m[0], reference.state.y_m[0]], axis=1), atol=1e-6)
            in_lane = np.isclose(objects.state.lateral_m[0], lateral_before)  # not mid lane change this step
            along_lane_mps += (np.hypot(*(actual[:, :2] - before).T)[in_lane] * 15.0).tolist()
            before, lateral_before = actual[:, :2], objects.state.lateral_m[0].copy()
        # In its lane a bot drives its lane's line at bot_speed_mps (2 m/s) on average; step by step the built-in's
        # lane follower runs a little fast between the route polyline's vertices and jumps back at them.
        assert len(along_lane_mps) > 20 and math.isclose(np.mean(along_lane_mps), 2.0, rel_tol=0.03)
        assert (reference.state.lane_changes_done[0] > 0).all()  # both changed lanes within 3 s (interval 0.5..1 s)
        assert np.allclose(info["params"]["objects_speed"], 2.0)
    finally:
        env.close()


def test_only_our_actors_are_spawned_and_all_of_them_destroyed_on_reset_and_close():
    server = fc._get_server()
    world = fc.Client().get_world()
    library = world.get_blueprint_library()
    foreign = world.spawn_actor(library.find("static.prop.box01"), fc.Transform(fc.Location(0.0, 0.0, 0.0)))
    env = RacingEnv(carla_config({"type": "object_avoidance", "num_obstacles": 3, "min_distance_m": 8.0}))
    try:
        counts = []
        for episode in range(6):
            env.reset(seed=episode)
            for _ in range(3):
                env.step(SLOW)
            counts.append(len(server.actors))
            assert len(our_actors()) == 3
        env.recover_to_track()  # the car is put back: its objects stand again by the next step
        env.step(SLOW)
        counts.append(len(server.actors))
        assert counts == [1 + 3 + 3] * 7  # the foreign prop, car + collision + lane sensors, three boxes
    finally:
        env.close()
    assert list(server.actors) == [foreign.id] and foreign.is_alive


def test_a_server_lost_while_moving_the_bots_ends_the_next_step_as_sim_error_and_the_reset_recovers(monkeypatch):
    env = RacingEnv(carla_config({"type": "head_to_bot", "num_bots": 2, "min_distance_m": 10.0}))
    try:
        env.reset(seed=1)
        env.step(SLOW)
        real_step = CarlaSimulator.step

        def step_then_die(sim, steering_rad, speed_mps):
            state = real_step(sim, steering_rad, speed_mps)
            fc._kill_server()  # dies after the car's step: moving the bots is the first call to fail
            return state

        monkeypatch.setattr(CarlaSimulator, "step", step_then_die)
        _, _, _, truncated, _ = env.step(SLOW)  # no exception out of the env
        assert not truncated
        monkeypatch.setattr(CarlaSimulator, "step", real_step)
        _, _, _, truncated, info = env.step(SLOW)
        assert truncated and info["episode_status"] == "sim_error"
        fc.REVIVE_DEAD = True
        env.reset(seed=1)
        assert len(our_actors()) == 2  # on the fresh server: the new episode's bots, ours only
    finally:
        env.close()


def test_driving_into_a_box_ends_the_episode_crashed():
    # A box 3.8 m ahead on a lane line: the car's 1.9 m wide body covers both lane lines of the 4 m road.
    env = RacingEnv(carla_config({"type": "object_avoidance", "positions": [[0.02, 1]]}, max_episode_steps=200))
    try:
        env.reset(seed=0)
        for _ in range(150):
            _, _, terminated, truncated, info = env.step(FAST)
            if terminated or truncated:
                break
            # A real tick takes >= 1/15 s; the fake's takes microseconds, and it delivers sensor events on its own
            # thread 0-3 ms later (as CARLA does): without this the crash was seen up to 10 steps late, metres on.
            time.sleep(0.01)
        assert terminated and info["episode_status"] == "crashed" and info["params"]["is_crashed"]
        car = env.race.states
        box = env.race.race_objects.state
        # It ended touching the box: centres closer than the car's half length plus the box's.
        assert math.hypot(float(car.x_m[0]) - box.x_m[0, 0], float(car.y_m[0]) - box.y_m[0, 0]) < 2.4 + 0.35 + 0.1
    finally:
        env.close()


def test_a_bot_placed_into_the_car_is_a_one_line_error_and_leaves_no_actor():
    env = RacingEnv(carla_config({"type": "head_to_bot", "num_bots": 2, "positions": [[0.5, 1], [0.005, 1]]}))
    try:
        with pytest.raises(ConfigError, match="could not spawn vehicle.audi.tt for object 1 .* raise env_config.race.min_distance_m") as info:
            env.reset(seed=0)
        assert "\n" not in str(info.value) and our_actors() == {}  # all or none: bot 0 was taken back
    finally:
        env.close()


@pytest.mark.parametrize("race", [{"type": "head_to_bot"}, {"type": "object_avoidance"}])
def test_race_types_validate_on_carla(race):
    # A map route is one track driven one way: what the objects need (the builtin-only refusal is gone).
    assert validate_env_config(carla_config(race))["race"]["type"] == race["type"]


CAMERA_ON = {"_fake_module": "tests.fake_carla", "avoid_server_init": True, "timeout_s": 1.0}


@pytest.mark.parametrize("config, message", [
    (carla_config({"type": "head_to_bot"}, start={"direction": "random"}), "start.direction counter_clockwise or clockwise"),
    ({**carla_config({"type": "object_avoidance"}), "track": ["oval", "speedway"],
      "carla": {"track_source": "env"}}, "one track name or file"),
    (carla_config({}, observation={"type": "stereo_camera"}, carla=CAMERA_ON), "renders one front camera, not a stereo pair"),
    (carla_config({}, observation={"type": "camera", "randomize": {"enabled": True, "camera_height_m": 0.02}}, carla=CAMERA_ON),
     "camera pose jitter"),
    (carla_config({}, observation={"type": "both", "camera": {"randomize": {"enabled": True, "camera_fov_deg": 5.0}}},
                  carla=CAMERA_ON), "camera pose jitter"),
])
def test_what_carla_cannot_serve_fails_at_validation_in_one_line(config, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate_env_config(config)
    assert "\n" not in str(info.value)


def test_everything_the_race_actors_touch_exists_in_real_carla():
    carla = pytest.importorskip("carla", reason="the real carla client package is not installed")
    from tests.test_carla_contract import _ModuleRecorder, names_missing_in_real_carla

    log: set = set()
    fc._RECORDING = log
    try:
        for race in ({"type": "object_avoidance", "num_obstacles": 2, "min_distance_m": 8.0},
                     {"type": "head_to_bot", "num_bots": 2, "min_distance_m": 8.0}):
            sim = CarlaSimulator({"avoid_server_init": True, "timeout_s": 1.0, "camera": {"enabled": False}}, None,
                                 run_name="contract", runner_index=0, is_evaluation=False, carla_module=_ModuleRecorder(fc, log))
            track = sim.load_track()
            (pos,), (heading,) = track.point_at(0.0)
            sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))
            objects = RaceObjects(race, track, 1)
            objects.reset([0], [np.random.default_rng(0)], np.zeros(1))
            sim.sync_race_objects(objects)
            for k in range(3):
                sim.step(0.0, 1.0)
                objects.step(np.full(1, (k + 1) / 15.0), 1.0 / 15.0)
                sim.sync_race_objects(objects)
            object_params(objects, np.array([pos[0]]), np.array([pos[1]]), np.array([heading]), np.zeros(1))
            sim.close()
    finally:
        fc._RECORDING = None
    assert ("Vehicle", "set_simulate_physics") in log and ("<module>", "command.ApplyTransform") in log
    assert names_missing_in_real_carla(log) == [] and carla is not None
