"""The built-in camera sees DeepRacer's boxes and bot cars as solid, shaded volumes; time trials look as before."""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.sim.camera import OBJECT_GRAY, OBJECT_RGB, PALETTE_GRAY, GroundCamera, ObjectBoxes
from control.sim.objects import KIND_BOT, KIND_BOX
from tests.test_race_objects import _rectangle_track as rectangle_track

LENS = dict(width_px=160, height_px=120, fov_deg=120.0, height_m=0.10, pitch_deg=15.0, x_offset_m=0.08)
END, SIDE, TOP = 0, 1, 2  # the faces of OBJECT_GRAY's second axis




def pixel_of(point_m: tuple[float, float, float], lens: dict = LENS) -> tuple[int, int]:
    """(row, col) whose ray passes nearest a point (forward, left, up) in the car frame: the pinhole model, forwards."""
    rel = np.array([point_m[0] - lens["x_offset_m"], point_m[1], point_m[2] - lens["height_m"]])
    p = math.radians(lens["pitch_deg"])
    axis, up, right = np.array([math.cos(p), 0, -math.sin(p)]), np.array([math.sin(p), 0, math.cos(p)]), np.array([0, -1.0, 0])
    focal = 0.5 * lens["width_px"] / math.tan(math.radians(lens["fov_deg"]) / 2)
    depth = rel @ axis
    col = lens["width_px"] / 2 + focal * (rel @ right) / depth
    row = lens["height_px"] / 2 - focal * (rel @ up) / depth
    assert depth > 0 and 0 <= row < lens["height_px"] and 0 <= col < lens["width_px"], f"{point_m} is out of view"
    return int(math.floor(row)), int(math.floor(col))


def boxes(*specs: tuple) -> ObjectBoxes:
    """One env's boxes from (x, y, yaw, length, width, height, kind) tuples."""
    x, y, yaw, length, width, height, kind = (np.array([[s[k] for s in specs]], dtype=float) for k in range(7))
    return ObjectBoxes(x, y, yaw, 0.5 * length, 0.5 * width, height, kind.astype(np.int64))


@pytest.fixture(scope="module")
def camera() -> GroundCamera:
    return GroundCamera(rectangle_track(), **LENS, rgb=False, centerline=False)


def render(camera: GroundCamera, objects: ObjectBoxes | None, x_m: float = 0.0, y_m: float = 0.0, yaw_rad: float = 0.0) -> np.ndarray:
    return camera.render_batch(np.array([x_m]), np.array([y_m]), np.array([yaw_rad]), objects=objects)[0]


def test_a_pixel_that_looks_at_a_box_shows_the_box_and_the_ground_around_it_is_unchanged(camera):
    box = boxes((1.5, 0.1, 0.0, 0.3, 0.3, 0.3, KIND_BOX))  # near face at x = 1.35, y -0.05..0.25
    plain, seen = render(camera, None), render(camera, box)
    face = pixel_of((1.35, 0.1, 0.15))  # the middle of the face towards the car
    assert seen[face] == OBJECT_GRAY[KIND_BOX, END] and plain[face] in PALETTE_GRAY
    for beside in ((1.35, 0.45, 0.0), (1.35, -0.25, 0.0), (3.0, 0.9, 0.0)):  # road beside the box, grass beyond it
        assert seen[pixel_of(beside)] == plain[pixel_of(beside)]
    assert seen[pixel_of((1.35, 0.1, 0.4))] == plain[pixel_of((1.35, 0.1, 0.4))]  # above its top: what was there before
    changed = seen != plain
    assert np.isin(seen[changed], OBJECT_GRAY).all()  # only object colours were painted
    assert camera.last_object_pixels[0] == changed.sum() > 0


def test_a_volume_shows_its_faces_in_different_shades(camera):
    # A low box seen corner-on from above: its top and two vertical faces are all in view.
    box = boxes((1.5, 0.0, math.radians(45), 0.3, 0.3, 0.05, KIND_BOX))
    seen = render(camera, box)
    assert seen[pixel_of((1.5, 0.0, 0.05))] == OBJECT_GRAY[KIND_BOX, TOP]
    shades = set(np.unique(seen[np.isin(seen, OBJECT_GRAY[KIND_BOX])]).tolist())
    assert shades == set(OBJECT_GRAY[KIND_BOX].tolist())  # top, ends and sides: three shades of the box's colour


def test_a_nearer_object_hides_a_farther_one_and_bots_have_their_own_colour(camera):
    bot = (1.2, 0.0, 0.0, 0.4, 0.25, 0.15, KIND_BOT)
    far_box = (2.5, 0.0, 0.0, 0.3, 0.3, 0.4, KIND_BOX)
    both = render(camera, boxes(far_box, bot))  # the far one first: the order of objects does not matter
    assert both[pixel_of((1.0, 0.0, 0.1))] == OBJECT_GRAY[KIND_BOT, END]
    assert both[pixel_of((2.35, 0.0, 0.3))] == OBJECT_GRAY[KIND_BOX, END]  # the box's upper part shows above the bot
    np.testing.assert_array_equal(both, render(camera, boxes(bot, far_box)))


def test_objects_behind_or_beside_the_lens_change_no_pixel_and_rgb_frames_paint_rgb(camera):
    plain = render(camera, None)
    behind = boxes((-1.0, 0.0, 0.0, 0.3, 0.3, 0.3, KIND_BOX), (0.0, 2.0, 0.3, 0.3, 0.3, 0.3, KIND_BOT))
    np.testing.assert_array_equal(render(camera, behind), plain)
    assert camera.last_object_pixels[0] == 0
    rgb = GroundCamera(rectangle_track(), **LENS, rgb=True, centerline=False)
    frame = rgb.render_batch(np.zeros(1), np.zeros(1), np.zeros(1), objects=boxes((1.5, 0.1, 0.0, 0.3, 0.3, 0.3, KIND_BOX)))[0]
    np.testing.assert_array_equal(frame[pixel_of((1.35, 0.1, 0.15))], OBJECT_RGB[KIND_BOX, END])


def test_each_frame_sees_its_own_envs_objects(camera):
    # Two cars at the same pose, each env with its own box: env 1's box is out of sight.
    objects = ObjectBoxes(np.array([[1.5], [-3.0]]), np.zeros((2, 1)), np.zeros((2, 1)), np.full((2, 1), 0.15), np.full((2, 1), 0.15),
                          np.full((2, 1), 0.3), np.zeros((2, 1), dtype=np.int64))
    frames = camera.render_batch(np.zeros(3), np.zeros(3), np.zeros(3), objects=objects, rows=np.array([1, 0, 1]))
    assert camera.last_object_pixels[0] == camera.last_object_pixels[2] == 0 and camera.last_object_pixels[1] > 0
    plain = render(camera, None)
    np.testing.assert_array_equal(frames[0], plain)
    np.testing.assert_array_equal(frames[2], plain)
    assert frames[1][pixel_of((1.35, 0.0, 0.15))] == OBJECT_GRAY[KIND_BOX, END]


# ------------------------------------------------------------------ in the env
def env_frames(tmp_path, race: dict | None, steps: int = 3, observation: dict | None = None) -> tuple[RacingEnv, list[np.ndarray]]:
    path = rectangle_track().to_npy(tmp_path / "rectangle.npy")
    config = {"track": str(path), "start": {"mode": "fixed", "waypoint": 0}, "observation": observation or {"type": "camera"}}
    if race is not None:
        config["race"] = race
    env = RacingEnv(config)
    obs, _ = env.reset(seed=0)
    frames = [obs]
    for _ in range(steps):
        obs, *_ = env.step(np.array([0.0, -1.0], dtype=np.float32))
        frames.append(obs)
    return env, frames


def test_the_env_camera_shows_a_box_ahead_and_time_trials_are_the_plain_ground_render(tmp_path):
    # A box at 5 % of the 60 m lap in the inner lane: centre (3, 0.25), near face at x = 2.85; the car starts at (0, 0).
    env, frames = env_frames(tmp_path, {"type": "object_avoidance", "positions": [[0.05, 1]]}, steps=0)
    assert frames[0].shape == (120, 160, 1)
    assert frames[0][(*pixel_of((2.85, 0.25, 0.15)), 0)] == OBJECT_GRAY[KIND_BOX, END]
    assert env.race.observation_type.object_pixels[0] > 0
    # A time trial's frames are the ground camera's plain render of the same poses, bit for bit.
    trial, frames = env_frames(tmp_path, None)
    cam = GroundCamera(rectangle_track(), **LENS, rgb=False)
    st = trial.race.states
    np.testing.assert_array_equal(frames[-1][..., 0], cam.render(float(st.x_m[0]), float(st.y_m[0]), float(st.yaw_rad[0])))


def test_objects_out_of_sight_leave_the_frames_of_a_time_trial(tmp_path):
    _, trial = env_frames(tmp_path, None)
    _, boxed = env_frames(tmp_path, {"type": "object_avoidance", "positions": [[0.9, 1], [0.95, -1]]})  # beside and behind
    for a, b in zip(trial, boxed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_env_camera_shows_bot_cars(tmp_path):
    env, _ = env_frames(tmp_path, {"type": "head_to_bot", "num_bots": 2, "lane_changes": False}, steps=0)
    objects = env.race.race_objects
    objects.state.s_m[0], objects.state.lateral_m[0] = [2.0, 40.0], [0.25, -0.25]  # one bot 2 m ahead in the inner lane
    objects.refresh_poses()
    obs, *_ = env.step(np.array([0.0, -1.0], dtype=np.float32))
    st, bot_x = env.race.states, float(objects.state.x_m[0, 0])
    rear_face_m = (bot_x - 0.2 - float(st.x_m[0]), 0.25 - float(st.y_m[0]), 0.1)  # a 0.4 m bot, 0.2 m tall
    assert obs[(*pixel_of(rear_face_m), 0)] == OBJECT_GRAY[KIND_BOT, END]
    assert not np.isin(obs, OBJECT_GRAY[KIND_BOX]).any()


def test_object_in_camera_is_the_next_objects_footprint_in_the_camera_frustum():
    from control.config_schema import parse_section
    from control.sim.objects import RaceConfig, RaceObjects, object_params

    track = rectangle_track()
    objects = RaceObjects(parse_section(RaceConfig, {"type": "object_avoidance", "positions": [[0.1, 1], [0.7, -1]]}, "env_config.race"),
                          track, num_envs=1)
    objects.reset([0], [np.random.default_rng(0)], np.array([0.0]))  # box 0 at (6, 0.25), box 1 at (8, 10.25)
    cam = GroundCamera(track, **LENS, rgb=False)
    as_boxes = ObjectBoxes.of_race(objects, 0.3, 0.2)

    def in_camera(x_m: float, y_m: float, yaw_rad: float, s_m: float) -> bool:
        params = object_params(objects, np.array([x_m]), np.array([y_m]), np.array([yaw_rad]), np.array([s_m])).car_dict(0)
        return params["object_in_camera"]

    # Box 0 ahead, its centre 62 degrees off the heading (beyond the 60-degree half field of view) but its
    # nearest corner inside the frustum: DeepRacer counts the footprint's corners, and the frame shows the box.
    assert in_camera(5.0, -1.65, 0.0, 5.0)
    render(cam, as_boxes, 5.0, -1.65, 0.0)
    assert cam.last_object_pixels[0] > 0
    # Turned away from it: not in the frustum, and not in the frame.
    assert not in_camera(5.0, -1.65, -0.6, 5.0)
    render(cam, as_boxes, 5.0, -1.65, -0.6)
    assert cam.last_object_pixels[0] == 0
    # Only the next object counts (DeepRacer's is_next_object_in_camera): looking across at box 1 with box 0 ahead.
    assert not in_camera(2.0, 0.0, math.radians(90), 2.0)
    render(cam, as_boxes, 2.0, 0.0, math.radians(90))
    assert cam.last_object_pixels[0] > 0  # box 1 is in the frame


def reference_object_mask(lens: dict, box: tuple, car_x_m: float, car_y_m: float, car_yaw_rad: float) -> np.ndarray:
    """(H, W) pixels whose ray meets an upright box (x, y, yaw, length, width, height) before the ground: a ray cast on every pixel."""
    w, h = lens["width_px"], lens["height_px"]
    focal = 0.5 * w / math.tan(math.radians(lens["fov_deg"]) / 2)
    p = math.radians(lens["pitch_deg"])
    v = (0.5 * h - (np.arange(h) + 0.5))[:, None] / focal * np.ones((1, w))
    u = (np.arange(w) + 0.5 - 0.5 * w)[None, :] / focal * np.ones((h, 1))
    ray = np.stack([math.cos(p) + v * math.sin(p), -u, -math.sin(p) + v * math.cos(p)], axis=-1)  # car frame
    c, s = math.cos(car_yaw_rad), math.sin(car_yaw_rad)
    lens_world = np.array([car_x_m + c * lens["x_offset_m"], car_y_m + s * lens["x_offset_m"], lens["height_m"]])
    world = np.stack([c * ray[..., 0] - s * ray[..., 1], s * ray[..., 0] + c * ray[..., 1], ray[..., 2]], axis=-1)
    bx, by, byaw, length, width, height = box
    cb, sb = math.cos(byaw), math.sin(byaw)
    rel = lens_world - np.array([bx, by, 0.0])
    origin = np.array([cb * rel[0] + sb * rel[1], -sb * rel[0] + cb * rel[1], rel[2]])
    d = np.stack([cb * world[..., 0] + sb * world[..., 1], -sb * world[..., 0] + cb * world[..., 1], world[..., 2]], axis=-1)
    lo, hi = np.array([-length / 2, -width / 2, 0.0]), np.array([length / 2, width / 2, height])
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - origin) / d, (hi - origin) / d
    t_near, t_far = np.minimum(t1, t2).max(axis=-1), np.maximum(t1, t2).min(axis=-1)
    return (t_near <= t_far) & (t_far > 0)


def test_the_painter_matches_a_ray_cast_on_every_pixel_also_for_boxes_beside_and_around_the_lens(camera):
    rng = np.random.default_rng(4)
    mismatched, painted = 0, 0
    for _ in range(40):
        # Boxes around the car within 2 m, many of them beside or partly behind the lens.
        box = (rng.uniform(-0.5, 2.0), rng.uniform(-1.0, 1.0), rng.uniform(-math.pi, math.pi), rng.uniform(0.2, 0.5), rng.uniform(0.2, 0.5),
               rng.uniform(0.05, 0.3))
        fx, fy = box[0] - LENS["x_offset_m"], box[1]
        if math.hypot(fx, fy) < 0.45:  # the lens would be inside or touching the box
            continue
        frame = render(camera, boxes((*box, KIND_BOX)))
        expected = reference_object_mask(LENS, box, 0.0, 0.0, 0.0)
        got = np.isin(frame, OBJECT_GRAY[KIND_BOX])
        mismatched += int((got != expected).sum())
        painted += int(expected.sum())
    assert painted > 5000
    assert mismatched <= 0.001 * painted  # only pixels whose ray grazes an edge may round the other way


def test_object_in_camera_uses_the_backends_own_camera():
    """A box dead ahead but off to the side is in DeepRacer's 120-degree view, not in a 4-degree one."""
    from control.env.racing_env import RacingEnv

    def in_camera(fov_deg: float) -> bool:
        env = RacingEnv({"track": "oval", "start": {"mode": "fixed", "waypoint": 0},
                         "race": {"type": "object_avoidance", "positions": [[0.05, 1]]},
                         "builtin": {"camera": {"fov_deg": fov_deg}}})
        env.reset(seed=0)
        return bool(env.race.car_params(0)["object_in_camera"])

    assert in_camera(120.0)
    assert not in_camera(4.0)


def test_the_render_camera_panel_shows_what_the_policy_saw():
    """The rollout video's camera panel: the observation's frame (boxes, looks), not the backend's plain ground render."""
    from control.env.racing_env import RacingEnv

    env = RacingEnv({"track": "oval", "start": {"mode": "fixed", "waypoint": 0},
                     "race": {"type": "object_avoidance", "positions": [[0.05, 1]]},
                     "observation": {"type": "camera", "randomize": {"enabled": True}}}, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    for _ in range(2):
        obs, *_ = env.step(np.zeros(2, dtype=np.float32))
    panel = env.race_state().camera_image
    assert np.array_equal(panel, obs[..., 0])
    assert not np.array_equal(panel, env.race.sim.camera_images(np.array([0]))[0])  # the plain render lacks box and looks
    assert env.render().shape[2] == 3
