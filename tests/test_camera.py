"""Ground camera: the track appears where a pinhole camera would see it."""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.sim.base import Pose
from control.sim.builtin import BuiltinSimulator
from control.sim.camera import BORDER, CENTERLINE, GROUND, PALETTE_GRAY, PALETTE_RGB, ROAD, SKY, GroundCamera
from control.track.track import Track

CAMERA = dict(width_px=160, height_px=120, fov_deg=120.0, height_m=0.10, pitch_deg=15.0, x_offset_m=0.08)
WIDTH_M = 1.0


@pytest.fixture(scope="module")
def stadium() -> Track:
    """Straights along y = -3 (driving +x) and y = +3 (driving -x), 12 m long, 1 m wide."""
    straight_m, radius_m, spacing_m = 12.0, 3.0, 0.1
    xs = np.arange(0.0, straight_m, spacing_m)
    a = np.linspace(-np.pi / 2, np.pi / 2, 95, endpoint=False)
    center = np.vstack(
        [
            np.c_[xs, np.full(len(xs), -radius_m)],
            np.c_[straight_m + radius_m * np.cos(a), radius_m * np.sin(a)],
            np.c_[straight_m - xs, np.full(len(xs), radius_m)],
            np.c_[-radius_m * np.cos(a), -radius_m * np.sin(a)],
        ]
    )
    return Track(center, width_m=WIDTH_M, name="stadium")


def pixel_of(car_frame_point: tuple[float, float], cam: dict = CAMERA) -> tuple[int, int]:
    """(row, col) where a ground point (forward_m, left_m) in the car frame lands: the pinhole model, forwards."""
    fwd, left = car_frame_point
    rel = np.array([fwd - cam["x_offset_m"], left, -cam["height_m"]])
    p = math.radians(cam["pitch_deg"])
    axis, up, right = np.array([math.cos(p), 0, -math.sin(p)]), np.array([math.sin(p), 0, math.cos(p)]), np.array([0, -1.0, 0])
    focal = 0.5 * cam["width_px"] / math.tan(math.radians(cam["fov_deg"]) / 2)
    depth = rel @ axis
    col = cam["width_px"] / 2 + focal * (rel @ right) / depth
    row = cam["height_px"] / 2 - focal * (rel @ up) / depth
    row, col = int(math.floor(row)), int(math.floor(col))
    assert depth > 0 and 0 <= row < cam["height_px"] and 0 <= col < cam["width_px"], f"{car_frame_point} is out of view"
    return row, col


def classes_of(gray: np.ndarray) -> np.ndarray:
    """Palette class of each gray pixel."""
    lookup = np.full(256, -1)
    lookup[PALETTE_GRAY] = np.arange(len(PALETTE_GRAY))
    return lookup[gray]


@pytest.fixture(scope="module")
def camera(stadium: Track) -> GroundCamera:
    return GroundCamera(stadium, **CAMERA, rgb=False, centerline=False)


def test_palette_classes_are_distinct_in_gray() -> None:
    assert len(set(PALETTE_GRAY.tolist())) == len(PALETTE_GRAY)


def test_road_ahead_on_a_straight_and_ground_beyond_the_border(camera: GroundCamera) -> None:
    image = camera.render(2.0, -3.0, 0.0)  # on the first straight, centred, looking along it
    assert image.shape == (120, 160) and image.dtype == np.uint8
    cls = classes_of(image)
    for ahead_m in (0.7, 1.0, 2.0, 4.0):
        assert cls[pixel_of((ahead_m, 0.0))] == ROAD
        assert cls[pixel_of((ahead_m, 0.3))] == ROAD  # still inside the 0.5 m half-width
        assert cls[pixel_of((ahead_m, -0.3))] == ROAD
        assert cls[pixel_of((ahead_m, 0.8))] == GROUND  # beyond the left border
        assert cls[pixel_of((ahead_m, -0.8))] == GROUND  # beyond the right border
    # The white border lines sit at +-0.5 m: left border in the left half of the image.
    row, col = pixel_of((1.0, WIDTH_M / 2))
    assert col < 80 and BORDER in cls[row, col - 1 : col + 2]
    row, col = pixel_of((1.0, -WIDTH_M / 2))
    assert col >= 80 and BORDER in cls[row, col - 1 : col + 2]


def test_sky_above_the_horizon(camera: GroundCamera) -> None:
    cls = classes_of(camera.render(2.0, -3.0, 0.0))
    # Horizon: the row whose ray is level, tan(pitch) * focal above the image centre.
    focal = 80 / math.tan(math.radians(60))
    horizon_row = 60 - focal * math.tan(math.radians(15))
    assert np.all(cls[: int(horizon_row)] == SKY)
    assert not np.any(cls[int(horizon_row) + 1 :] == SKY)


def test_view_follows_the_car_pose(camera: GroundCamera) -> None:
    # On the far straight facing the other way the view is the same road.
    cls = classes_of(camera.render(6.0, 3.0, math.pi))
    assert cls[pixel_of((1.0, 0.0))] == ROAD
    assert cls[pixel_of((1.0, 0.8))] == GROUND
    # Facing across the track (towards the infield), the road ends after half a metre.
    cls = classes_of(camera.render(6.0, -3.0, math.pi / 2))
    assert cls[pixel_of((0.3, 0.0))] == ROAD
    assert cls[pixel_of((1.5, 0.0))] == GROUND
    # Offset to the left: the left border moves towards the image centre, the right one away.
    cls = classes_of(camera.render(6.0, -2.7, 0.0))  # 0.3 m left of centre
    assert cls[pixel_of((1.0, 0.1))] == ROAD
    assert cls[pixel_of((1.0, 0.3))] == GROUND
    assert cls[pixel_of((1.0, -0.7))] == ROAD


def test_far_from_the_track_shows_only_ground_and_sky(camera: GroundCamera) -> None:
    cls = classes_of(camera.render(500.0, -800.0, 1.0))
    assert set(np.unique(cls).tolist()) == {GROUND, SKY}


def test_rgb_frames_match_gray_frames(stadium: Track) -> None:
    rgb_cam = GroundCamera(stadium, **CAMERA, rgb=True)
    gray_cam = GroundCamera(stadium, **CAMERA, rgb=False)
    rgb = rgb_cam.render(2.0, -3.0, 0.1)
    gray = gray_cam.render(2.0, -3.0, 0.1)
    assert rgb.shape == (120, 160, 3) and rgb.dtype == np.uint8
    luma = np.round(rgb.astype(float) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    assert np.array_equal(luma, gray)
    assert np.array_equal(rgb[0, 0], PALETTE_RGB[SKY])


def test_dashed_yellow_centerline(stadium: Track) -> None:
    cam = GroundCamera(stadium, **CAMERA, rgb=False, centerline=True)
    cls = classes_of(cam.render(2.0, -3.0, 0.0))
    centre_col = [cls[pixel_of((d, 0.0))] for d in np.arange(0.3, 3.0, 0.05)]
    assert CENTERLINE in centre_col and ROAD in centre_col  # dashes and gaps


def test_custom_size(stadium: Track) -> None:
    cam = GroundCamera(stadium, width_px=84, height_px=64, fov_deg=90.0, rgb=True)
    assert cam.render(2.0, -3.0, 0.0).shape == (64, 84, 3)


def test_simulator_camera_renders_the_current_pose(stadium: Track) -> None:
    sim = BuiltinSimulator(stadium, {"camera": {"width_px": 96, "height_px": 72}})
    sim.reset(Pose(2.0, -3.0, 0.0), speed_mps=2.0)
    first = sim.camera_image()
    assert first.shape == (72, 96) and first.dtype == np.uint8
    for _ in range(5):
        state = sim.step(0.5, 2.0)
    after = sim.camera_image()
    assert not np.array_equal(first, after)
    reference = GroundCamera(stadium, width_px=96, height_px=72).render(state.x_m, state.y_m, state.yaw_rad)
    assert np.array_equal(after, reference)


def test_a_tracks_camera_is_rasterised_once_and_outlives_its_cars() -> None:
    """A procedural pool's tracks come back episode after episode: their cameras must not be rebuilt at each reset."""
    from control.env.vector_env import RacingVectorEnv

    env = RacingVectorEnv({"track": "procedural", "procedural": {"pool_size": 3},
                           "observation": {"type": "camera", "width_px": 32, "height_px": 24}}, num_envs=2)
    env.reset(seed=0)
    sim = env.race.sim
    tracks = {id(t): t for t in sim.tracks}
    first = {key: sim.camera(t) for key, t in tracks.items()}
    for seed in range(1, 12):  # new episodes move the cars across the pool's tracks
        env.reset(seed=seed)
        tracks.update({id(t): t for t in sim.tracks})
    assert all(sim.camera(tracks[key]) is cam for key, cam in first.items())
    assert len({id(sim.camera(t)) for t in tracks.values()}) == len(tracks)  # one camera per track (and direction)
    env.close()
