"""The built-in simulator: a kinematic bicycle at DeepRacer scale with a lateral grip limit.

The command is a steering angle and a *target* speed. Speed tracks the target within the
acceleration and braking limits; the path curvature is ``tan(steering) / wheelbase``,
clipped to ``mu * g / v**2`` so that the lateral acceleration never exceeds the grip: a car
that enters a corner too fast understeers (runs wide) instead of turning on a dime.
The pose is the car's centre; each physics sub-step moves it along an exact circular arc.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from control.errors import ConfigError, unknown_key_error
from control.sim.base import Pose, SimulatorBackend, VehicleState

DEFAULT_CAMERA_CONFIG: dict[str, Any] = {
    "width_px": 160,  # image width, pixels (DeepRacer: 160)
    "height_px": 120,  # image height, pixels (DeepRacer: 120)
    "rgb": False,  # True: (H, W, 3) RGB frames; False: (H, W) grayscale, DeepRacer's default
    "fov_deg": 120.0,  # horizontal field of view, degrees (DeepRacer's wide-angle lens)
    "height_m": 0.10,  # lens height above the ground, m
    "pitch_deg": 15.0,  # downward tilt of the optical axis, degrees
    "x_offset_m": 0.08,  # lens position ahead of the car's centre, m
    "texture_resolution_m": 0.02,  # ground texture cell size, m (1-2 cm keeps the border lines crisp)
    "centerline": True,  # draw DeepRacer's dashed yellow centerline
}

DEFAULT_BUILTIN_CONFIG: dict[str, Any] = {
    "control_hz": 15.0,  # control steps per second (DeepRacer: 15 Hz)
    "physics_substeps": 4,  # integration sub-steps per control step
    "wheelbase_m": 0.165,  # front-to-rear axle distance, m (1/18 scale car)
    "track_width_car_m": 0.15,  # left-to-right wheel distance, m
    "max_steering_deg": 30.0,  # steering lock, degrees (DeepRacer: +-30)
    "max_steering_rate_deg_s": None,  # steering servo rate, deg/s; None = reaches the command at once
    "max_speed_mps": 4.0,  # top speed, m/s (DeepRacer: 4)
    "max_accel_mps2": 3.0,  # forward acceleration limit, m/s^2
    "max_brake_mps2": 6.0,  # braking deceleration limit, m/s^2
    "friction_mu": 0.7,  # tyre-road friction coefficient: curvature <= mu * g / v^2 (0.7: a 1.6 m corner holds 3.3 m/s)
    "gravity_mps2": 9.81,  # gravitational acceleration, m/s^2
    "camera": DEFAULT_CAMERA_CONFIG,  # front camera, see DEFAULT_CAMERA_CONFIG
}

_POSITIVE_KEYS = (
    "control_hz",
    "wheelbase_m",
    "track_width_car_m",
    "max_steering_deg",
    "max_speed_mps",
    "max_accel_mps2",
    "max_brake_mps2",
    "friction_mu",
    "gravity_mps2",
)
_CAMERA_POSITIVE_KEYS = ("width_px", "height_px", "fov_deg", "height_m", "texture_resolution_m")


def _check_positive(cfg: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    """Raise ConfigError unless every key in `keys` holds a positive finite number."""
    for key in keys:
        value = cfg[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
        if not ok:
            raise ConfigError(f"{where}.{key} must be a positive number, got {value!r}")


def resolve_builtin_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults merged with `config`, validated; unknown keys and bad values raise ConfigError."""
    config = dict(config or {})
    for key in config:
        if key not in DEFAULT_BUILTIN_CONFIG:
            raise unknown_key_error(key, DEFAULT_BUILTIN_CONFIG, "the builtin simulator config")
    camera_in = config.pop("camera", None) or {}
    if not isinstance(camera_in, Mapping):
        raise ConfigError(f"builtin.camera must be a mapping of camera settings, got {camera_in!r}")
    for key in camera_in:
        if key not in DEFAULT_CAMERA_CONFIG:
            raise unknown_key_error(key, DEFAULT_CAMERA_CONFIG, "the builtin simulator camera config")
    cfg = copy.deepcopy(DEFAULT_BUILTIN_CONFIG)
    cfg.update(config)
    cfg["camera"].update(camera_in)

    _check_positive(cfg, _POSITIVE_KEYS, "builtin")
    _check_positive(cfg["camera"], _CAMERA_POSITIVE_KEYS, "builtin.camera")
    if not isinstance(cfg["physics_substeps"], int) or isinstance(cfg["physics_substeps"], bool) or cfg["physics_substeps"] < 1:
        raise ConfigError(f"builtin.physics_substeps must be an integer >= 1, got {cfg['physics_substeps']!r}")
    if cfg["max_steering_deg"] >= 89.0:
        raise ConfigError(f"builtin.max_steering_deg must be below 89 degrees, got {cfg['max_steering_deg']!r}")
    if cfg["max_steering_rate_deg_s"] is not None:
        _check_positive(cfg, ("max_steering_rate_deg_s",), "builtin")
    cam = cfg["camera"]
    if not 0 < cam["fov_deg"] < 179:
        raise ConfigError(f"builtin.camera.fov_deg must be between 0 and 179 degrees, got {cam['fov_deg']!r}")
    if not -89 < cam["pitch_deg"] < 89:
        raise ConfigError(f"builtin.camera.pitch_deg must be between -89 and 89 degrees, got {cam['pitch_deg']!r}")
    for key in ("width_px", "height_px"):
        if not isinstance(cam[key], int) or isinstance(cam[key], bool):
            raise ConfigError(f"builtin.camera.{key} must be an integer number of pixels, got {cam[key]!r}")
    for key in ("rgb", "centerline"):
        if not isinstance(cam[key], bool):
            raise ConfigError(f"builtin.camera.{key} must be true or false, got {cam[key]!r}")
    return cfg


def wheel_positions_m(x_m: float, y_m: float, yaw_rad: float, wheelbase_m: float, track_width_m: float) -> np.ndarray:
    """(4, 2) wheel contact points FL, FR, RL, RR of a car centred at (x_m, y_m) heading yaw_rad."""
    # Plain floats and one array at the end: this runs every step, and numpy's per-call cost dominates at 4x2.
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    half_l, half_w = 0.5 * wheelbase_m, 0.5 * track_width_m
    fx, fy = c * half_l, s * half_l  # centre to front axle
    lx, ly = -s * half_w, c * half_w  # axle centre to left wheel
    front_x, front_y, rear_x, rear_y = x_m + fx, y_m + fy, x_m - fx, y_m - fy
    return np.array(
        [
            [front_x + lx, front_y + ly],
            [front_x - lx, front_y - ly],
            [rear_x + lx, rear_y + ly],
            [rear_x - lx, rear_y - ly],
        ]
    )


class BuiltinSimulator(SimulatorBackend):
    """One car on one track: kinematic bicycle, speed-tracking throttle, grip-limited curvature, camera."""

    def __init__(self, track: Any, config: Mapping[str, Any] | None = None) -> None:
        self.track = track
        self.config = resolve_builtin_config(config)
        cfg = self.config
        self.control_hz = float(cfg["control_hz"])
        self._substeps = int(cfg["physics_substeps"])
        self._dt_s = 1.0 / (self.control_hz * self._substeps)
        self._wheelbase_m = float(cfg["wheelbase_m"])
        self._car_width_m = float(cfg["track_width_car_m"])
        self._max_steer_rad = math.radians(cfg["max_steering_deg"])
        rate = cfg["max_steering_rate_deg_s"]
        self._max_steer_step_rad = math.inf if rate is None else math.radians(rate) * self._dt_s
        self._max_speed_mps = float(cfg["max_speed_mps"])
        self._accel_step_mps = float(cfg["max_accel_mps2"]) * self._dt_s
        self._brake_step_mps = float(cfg["max_brake_mps2"]) * self._dt_s
        self._grip_mps2 = float(cfg["friction_mu"]) * float(cfg["gravity_mps2"])  # max lateral acceleration
        self._camera = None  # built on the first camera_image(): rasterising the track costs time
        self._x_m = self._y_m = self._yaw_rad = 0.0
        self._speed_mps = self._steer_rad = self._time_s = 0.0
        self._state: VehicleState | None = None

    @property
    def state(self) -> VehicleState:
        """The state after the latest reset/step."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before reading the state")
        return self._state

    def reset(self, pose: Pose, speed_mps: float = 0.0) -> VehicleState:
        """Place the car at `pose` with straight wheels, moving at `speed_mps` (clipped to 0..max)."""
        values = (pose.x_m, pose.y_m, pose.yaw_rad, speed_mps)
        if not all(math.isfinite(float(v)) for v in values):
            raise ValueError(f"BuiltinSimulator.reset: pose and speed must be finite, got {pose}, speed_mps={speed_mps}")
        self._x_m, self._y_m = float(pose.x_m), float(pose.y_m)
        self._yaw_rad = math.remainder(float(pose.yaw_rad), math.tau)
        self._speed_mps = min(max(float(speed_mps), 0.0), self._max_speed_mps)
        self._steer_rad = 0.0
        self._time_s = 0.0
        self._state = self._make_state(0.0, False, 0.0, 0.0)
        return self._state

    def step(self, steering_rad: float, speed_mps: float) -> VehicleState:
        """Advance one control period: steer towards `steering_rad`, drive towards target `speed_mps`."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before step()")
        steering_rad, speed_mps = float(steering_rad), float(speed_mps)
        if not (math.isfinite(steering_rad) and math.isfinite(speed_mps)):
            raise ValueError(f"BuiltinSimulator.step: commands must be finite, got steering_rad={steering_rad}, speed_mps={speed_mps}")
        steer_cmd = min(max(steering_rad, -self._max_steer_rad), self._max_steer_rad)
        speed_cmd = min(max(speed_mps, 0.0), self._max_speed_mps)  # no reverse gear, like DeepRacer
        x, y, yaw, v, steer = self._x_m, self._y_m, self._yaw_rad, self._speed_mps, self._steer_rad
        dt, inv_wheelbase = self._dt_s, 1.0 / self._wheelbase_m
        understeer = False
        kappa = 0.0
        for _ in range(self._substeps):
            steer += min(max(steer_cmd - steer, -self._max_steer_step_rad), self._max_steer_step_rad)
            v_next = v + min(max(speed_cmd - v, -self._brake_step_mps), self._accel_step_mps)
            v_mid = 0.5 * (v + v_next)  # exact mean speed under constant acceleration
            kappa = math.tan(steer) * inv_wheelbase
            if v_mid > 0.0:
                kappa_grip = self._grip_mps2 / (v_mid * v_mid)
                if abs(kappa) > kappa_grip:  # the tyres slide: the car runs wide
                    kappa = math.copysign(kappa_grip, kappa)
                    understeer = True
            ds = v_mid * dt
            dyaw = kappa * ds
            half = 0.5 * dyaw
            # Chord of a circular arc: length ds * sin(half)/half, along the mean heading.
            chord = ds * (math.sin(half) / half if abs(half) > 1e-9 else 1.0 - half * half / 6.0)
            x += chord * math.cos(yaw + half)
            y += chord * math.sin(yaw + half)
            yaw += dyaw
            v = v_next
        self._x_m, self._y_m, self._yaw_rad = x, y, math.remainder(yaw, math.tau)
        self._speed_mps, self._steer_rad = v, steer
        self._time_s += 1.0 / self.control_hz
        self._state = self._make_state(kappa, understeer, steer_cmd, speed_cmd)
        return self._state

    def _make_state(self, kappa: float, understeer: bool, steer_cmd: float, speed_cmd: float) -> VehicleState:
        """Package the current internal state."""
        v = self._speed_mps
        return VehicleState(
            x_m=self._x_m,
            y_m=self._y_m,
            yaw_rad=self._yaw_rad,
            speed_mps=v,
            steering_rad=self._steer_rad,
            wheel_positions_m=wheel_positions_m(self._x_m, self._y_m, self._yaw_rad, self._wheelbase_m, self._car_width_m),
            time_s=self._time_s,
            extra={
                "curvature_per_m": kappa,  # path curvature in the last sub-step (after the grip limit)
                "lateral_accel_mps2": v * v * kappa,
                "understeer": understeer,  # the grip limit cut the curvature during this step
                "steering_cmd_rad": steer_cmd,
                "speed_cmd_mps": speed_cmd,
            },
        )

    def camera_image(self) -> np.ndarray:
        """The front camera frame for the current pose: (H, W) gray, or (H, W, 3) RGB if camera.rgb."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before camera_image()")
        if self._camera is None:
            from control.sim.camera import GroundCamera

            cam = self.config["camera"]
            self._camera = GroundCamera(
                self.track,
                width_px=cam["width_px"],
                height_px=cam["height_px"],
                fov_deg=cam["fov_deg"],
                height_m=cam["height_m"],
                pitch_deg=cam["pitch_deg"],
                x_offset_m=cam["x_offset_m"],
                rgb=cam["rgb"],
                texture_resolution_m=cam["texture_resolution_m"],
                centerline=cam["centerline"],
            )
        return self._camera.render(self._x_m, self._y_m, self._yaw_rad)

    def close(self) -> None:
        """Drop the camera texture; the simulator holds no other resources."""
        self._camera = None
