"""stereo_camera: DeepRacer's two front cameras a baseline apart, stacked as two gray channels."""
from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from control.env.observations import STEREO_BASELINE_M, make_observation_type
from control.env.racing_env import RacingEnv
from control.errors import ConfigError
from control.sim.camera import OBJECT_GRAY, GroundCamera
from control.sim.objects import KIND_BOX
from tests.test_camera_objects import END, LENS, pixel_of, rectangle_track


def stereo_env(tmp_path, observation: dict | None = None, race: dict | None = None) -> RacingEnv:
    path = rectangle_track().to_npy(tmp_path / "rectangle.npy")
    config = {"track": str(path), "start": {"mode": "fixed", "waypoint": 0}, "observation": {"type": "stereo_camera", **(observation or {})}}
    if race is not None:
        config["race"] = race
    return RacingEnv(config)


def test_stereo_camera_passes_check_env_with_and_without_randomized_looks(tmp_path):
    check_env(stereo_env(tmp_path, {"width_px": 32, "height_px": 24}))
    check_env(stereo_env(tmp_path, {"width_px": 32, "height_px": 24, "frame_stack": 2, "randomize": {"enabled": True}}))
    assert stereo_env(tmp_path).observation_space.shape == (120, 160, 2)


def test_the_channels_are_single_camera_renders_from_poses_half_a_baseline_either_side(tmp_path):
    env = stereo_env(tmp_path)
    env.reset(seed=0)
    for _ in range(8):  # a steered car: the baseline follows its heading
        obs, *_ = env.step(np.array([0.6, 0.0], dtype=np.float32))
    st = env.race.states
    x, y, yaw = float(st.x_m[0]), float(st.y_m[0]), float(st.yaw_rad[0])
    assert abs(yaw) > 0.05
    cam = GroundCamera(rectangle_track(), **LENS, rgb=False)
    half = 0.5 * STEREO_BASELINE_M
    left = cam.render(x - math.sin(yaw) * half, y + math.cos(yaw) * half, yaw)
    right = cam.render(x + math.sin(yaw) * half, y - math.cos(yaw) * half, yaw)
    np.testing.assert_array_equal(obs[..., 0], left)
    np.testing.assert_array_equal(obs[..., 1], right)
    assert not np.array_equal(left, right)


def test_a_box_ahead_appears_shifted_by_the_baseline_parallax(tmp_path):
    # A box at 2 % of the 60 m lap in the inner lane: centre (1.2, 0.25), its face towards the car at x = 1.05, y 0.1..0.4.
    env = stereo_env(tmp_path, race={"type": "object_avoidance", "positions": [[0.02, 1]]})
    obs, _ = env.reset(seed=0)
    row, _ = pixel_of((1.05, 0.25, LENS["height_m"]))
    face_cols = [np.flatnonzero(obs[row, :, k] == OBJECT_GRAY[KIND_BOX, END]) for k in (0, 1)]
    assert len(face_cols[0]) and len(face_cols[1])
    # The face's outer (left, y = 0.4) edge in each camera: the left lens sees it further right, by f * B / depth.
    focal = 0.5 * LENS["width_px"] / math.tan(math.radians(LENS["fov_deg"]) / 2)
    depth_m = (1.05 - LENS["x_offset_m"]) * math.cos(math.radians(LENS["pitch_deg"]))
    disparity_px = face_cols[0].min() - face_cols[1].min()
    assert disparity_px == pytest.approx(focal * STEREO_BASELINE_M / depth_m, abs=1.0)
    assert disparity_px >= 2


def test_a_bad_baseline_is_a_one_line_error():
    with pytest.raises(ConfigError, match="baseline_m") as err:
        make_observation_type({"type": "stereo_camera", "baseline_m": -0.06})
    assert "\n" not in str(err.value)
