"""The built-in simulator: a kinematic bicycle at DeepRacer scale with a lateral grip limit.

The command is a steering angle and a *target* speed. Speed tracks the target within the
acceleration and braking limits; the path curvature is ``tan(steering) / wheelbase``,
clipped to ``mu * g / v**2`` so that the lateral acceleration never exceeds the grip: a car
that enters a corner too fast understeers (runs wide) instead of turning on a dime.
The pose is the car's centre; each physics sub-step moves it along an exact circular arc.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import numba
import numpy as np
from pydantic import AfterValidator, Field, Strict

from control.config_schema import (
    Expect,
    Flag,
    Number,
    PositiveNumber,
    PositiveWhole,
    Section,
    defaults_of,
    parse_section,
)
from control.sim.base import (
    DEEPRACER_LIMITS,
    BatchedSimulator,
    CameraSpec,
    CarStates,
    Pose,
    SimulatorBackend,
    VehicleLimits,
    VehicleState,
)

_CAM = CameraSpec()  # the camera's defaults are CameraSpec's (DeepRacer's)
_CAR = DEEPRACER_LIMITS  # the car's defaults are DeepRacer's


def _below_89(value: float) -> float:
    if not value < 89.0:
        raise ValueError("a positive number below 89 degrees")
    return value


class BuiltinCameraConfig(Section):
    """env_config.builtin.camera: the ground-plane pinhole camera (its keys are CameraSpec's)."""

    width_px: PositiveWhole = Field(_CAM.width_px, description="image width, pixels (DeepRacer: 160; a camera observation sets it)")
    height_px: PositiveWhole = Field(_CAM.height_px, description="image height, pixels (DeepRacer: 120; a camera observation sets it)")
    rgb: Flag = Field(_CAM.rgb, description="true: (H, W, 3) RGB frames; false: (H, W) gray, DeepRacer's default")
    fov_deg: Annotated[PositiveNumber, Field(lt=179), Expect("a number between 0 and 179 degrees")] = Field(
        _CAM.fov_deg, description="horizontal field of view, degrees (DeepRacer's wide-angle lens)")
    height_m: PositiveNumber = Field(_CAM.height_m, description="lens height above the ground, m")
    pitch_down_deg: Annotated[Number, Field(gt=-89, lt=89), Expect("a number between -89 and 89 degrees")] = Field(
        _CAM.pitch_down_deg, description="optical axis tilted this far below the horizon, degrees (positive = down)")
    x_offset_m: Number = Field(_CAM.x_offset_m, description="lens position ahead of the car's centre, m")
    texture_resolution_m: PositiveNumber = Field(0.02, description="ground texture cell size, m (1-2 cm keeps the border lines crisp)")
    centerline: Flag = Field(True, description="draw DeepRacer's dashed yellow centerline")


class BuiltinConfig(Section):
    """env_config.builtin: the built-in car (its VehicleLimits) and physics."""

    control_hz: PositiveNumber = Field(_CAR.control_hz, description="control steps per second (DeepRacer: 15 Hz)")
    physics_substeps: Annotated[PositiveWhole, Expect("an integer >= 1")] = Field(4, description="integration sub-steps per control step")
    wheelbase_m: PositiveNumber = Field(_CAR.wheelbase_m, description="front-to-rear axle distance, m (1/18 scale car: 0.165)")
    track_width_car_m: PositiveNumber = Field(_CAR.axle_track_m, description="left-to-right wheel distance, m")
    max_steering_deg: Annotated[PositiveNumber, AfterValidator(_below_89)] = Field(
        _CAR.max_steering_deg, description="steering lock either side, degrees (DeepRacer: 30)")
    max_steering_rate_deg_s: Annotated[PositiveNumber | None, Expect("null or a positive number")] = Field(
        None, description="steering servo rate, deg/s; null = reaches the command at once")
    max_speed_mps: PositiveNumber = Field(_CAR.max_speed_mps, description="top speed, m/s (DeepRacer: 4)")
    max_accel_mps2: PositiveNumber = Field(_CAR.max_accel_mps2, description="forward acceleration limit, m/s²")
    max_brake_mps2: PositiveNumber = Field(_CAR.max_brake_mps2, description="braking deceleration limit, m/s²")
    friction_mu: PositiveNumber = Field(_CAR.friction_mu, description="tyre-road friction: curvature <= mu * g / v² (0.7: a 1.6 m corner holds 3.3 m/s)")
    gravity_mps2: PositiveNumber = Field(_CAR.gravity_mps2, description="gravitational acceleration, m/s²")
    control_latency_steps: Annotated[int, Strict(), Field(ge=0, le=1), Expect("0 or 1")] = Field(
        0, description="control steps between an action and its command reaching the car (1: DeepRacer's car, which acts on the previous frame's action)")
    camera: BuiltinCameraConfig = Field(default_factory=BuiltinCameraConfig, description="front camera (env_config.builtin.camera)")


DEFAULT_BUILTIN_CONFIG: dict[str, Any] = defaults_of(BuiltinConfig)
DEFAULT_CAMERA_CONFIG: dict[str, Any] = DEFAULT_BUILTIN_CONFIG["camera"]


def resolve_builtin_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults merged with `config`, validated; unknown keys and bad values raise a one-line ConfigError."""
    return parse_section(BuiltinConfig, config, "env_config.builtin").model_dump()


def limits_from_config(cfg: Mapping[str, Any]) -> VehicleLimits:
    """The VehicleLimits a resolved builtin config declares."""
    return VehicleLimits(
        max_speed_mps=float(cfg["max_speed_mps"]), max_steering_deg=float(cfg["max_steering_deg"]),
        wheelbase_m=float(cfg["wheelbase_m"]), axle_track_m=float(cfg["track_width_car_m"]),
        control_hz=float(cfg["control_hz"]), max_accel_mps2=float(cfg["max_accel_mps2"]),
        max_brake_mps2=float(cfg["max_brake_mps2"]), friction_mu=float(cfg["friction_mu"]),
        gravity_mps2=float(cfg["gravity_mps2"]),
    )


def camera_spec_from_config(cam: Mapping[str, Any]) -> CameraSpec:
    """The CameraSpec of a resolved builtin camera config."""
    return CameraSpec(width_px=int(cam["width_px"]), height_px=int(cam["height_px"]), rgb=bool(cam["rgb"]),
                      fov_deg=float(cam["fov_deg"]), height_m=float(cam["height_m"]),
                      pitch_down_deg=float(cam["pitch_down_deg"]), x_offset_m=float(cam["x_offset_m"]))


@numba.njit(cache=True)
def _physics_step(x, y, yaw, v, steer, steer_in, speed_in, max_steer, max_speed, steer_cmd, speed_cmd, substeps, dt,
                  inv_wheelbase, max_steer_step, accel_step, brake_step, grip, kappa_out, understeer_out, time_s, period_s,
                  half_wheelbase, half_axle, wheels):  # pragma: no cover - compiled
    """Advance every car one control period in place: exact arcs per sub-step, grip-limited curvature.

    Clips the commands into steer_cmd/speed_cmd (no reverse gear), advances the clocks and writes the
    wheel positions; returns False (and changes nothing) when a command is not finite.
    """
    for i in range(x.shape[0]):
        if not (math.isfinite(steer_in[i]) and math.isfinite(speed_in[i])):
            return False
    for i in range(x.shape[0]):
        steer_cmd[i] = min(max(steer_in[i], -max_steer), max_steer)
        speed_cmd[i] = min(max(speed_in[i], 0.0), max_speed)
        xi, yi, yawi, vi, si = x[i], y[i], yaw[i], v[i], steer[i]
        understeer = False
        kappa = 0.0
        for _ in range(substeps):
            si += min(max(steer_cmd[i] - si, -max_steer_step), max_steer_step)
            v_next = vi + min(max(speed_cmd[i] - vi, -brake_step), accel_step)
            v_mid = 0.5 * (vi + v_next)  # exact mean speed under constant acceleration
            kappa = math.tan(si) * inv_wheelbase
            if v_mid > 0.0:
                kappa_grip = grip / (v_mid * v_mid)
                if abs(kappa) > kappa_grip:  # the tyres slide: the car runs wide
                    kappa = math.copysign(kappa_grip, kappa)
                    understeer = True
            ds = v_mid * dt
            dyaw = kappa * ds
            half = 0.5 * dyaw
            # Chord of a circular arc: length ds * sin(half)/half, along the mean heading.
            chord = ds * (math.sin(half) / half if abs(half) > 1e-9 else 1.0 - half * half / 6.0)
            xi += chord * math.cos(yawi + half)
            yi += chord * math.sin(yawi + half)
            yawi += dyaw
            vi = v_next
        # IEEE remainder to (-pi, pi], as math.remainder(yaw, tau).
        tau = 2.0 * math.pi
        yaw[i] = yawi - tau * np.rint(yawi / tau)
        x[i], y[i], v[i], steer[i] = xi, yi, vi, si
        kappa_out[i], understeer_out[i] = kappa, understeer
        time_s[i] += period_s
        _wheels(xi, yi, yaw[i], half_wheelbase, half_axle, wheels[i])
    return True


def _commands(values: Any, num_cars: int) -> np.ndarray:
    """(num_cars,) float64 commands; the race core's arrays pass through without a conversion."""
    if type(values) is np.ndarray and values.dtype == np.float64 and values.shape == (num_cars,):
        return values
    return np.asarray(values, dtype=np.float64).reshape(num_cars)


@numba.njit(cache=True)
def _reset_cars(idx, x_in, y_in, yaw_in, speed_in, max_speed, x, y, yaw, v, steer, time_s, half_wheelbase, half_axle, wheels,
                kappa, understeer, steer_cmd, speed_cmd):  # pragma: no cover - compiled
    """Place cars idx[j] at rest-or-moving with straight wheels; returns False (and changes nothing) for a non-finite pose."""
    for j in range(idx.shape[0]):
        if not (math.isfinite(x_in[j]) and math.isfinite(y_in[j]) and math.isfinite(yaw_in[j]) and math.isfinite(speed_in[j])):
            return False
    tau = 2.0 * math.pi
    for j in range(idx.shape[0]):
        c = idx[j]
        x[c], y[c] = x_in[j], y_in[j]
        yaw[c] = yaw_in[j] - tau * np.rint(yaw_in[j] / tau)
        v[c] = min(max(speed_in[j], 0.0), max_speed)
        steer[c], time_s[c], kappa[c], understeer[c], steer_cmd[c], speed_cmd[c] = 0.0, 0.0, 0.0, False, 0.0, 0.0
        _wheels(x[c], y[c], yaw[c], half_wheelbase, half_axle, wheels[c])
    return True


@numba.njit(cache=True)
def _wheels(x, y, yaw, half_l, half_w, out):  # pragma: no cover - compiled
    """Wheel contact points FL, FR, RL, RR (4, 2) of a car centred at (x, y): sim.base.wheel_positions_m for one car."""
    c, s = math.cos(yaw), math.sin(yaw)
    fx, fy = c * half_l, s * half_l  # centre to front axle
    lx, ly = -s * half_w, c * half_w  # axle centre to left wheel
    out[0, 0], out[0, 1] = x + fx + lx, y + fy + ly
    out[1, 0], out[1, 1] = x + fx - lx, y + fy - ly
    out[2, 0], out[2, 1] = x - fx + lx, y - fy + ly
    out[3, 0], out[3, 1] = x - fx - lx, y - fy - ly


class BuiltinBatch(BatchedSimulator):
    """N cars: kinematic bicycle, speed-tracking throttle, grip-limited curvature, ground camera."""

    def __init__(self, num_cars: int, config: Mapping[str, Any] | None = None) -> None:
        self.config = resolve_builtin_config(config)
        cfg = self.config
        self.num_cars = int(num_cars)
        self.limits = limits_from_config(cfg)
        self.camera_spec = camera_spec_from_config(cfg["camera"])
        self.control_hz = self.limits.control_hz
        self._substeps = int(cfg["physics_substeps"])
        self._dt_s = 1.0 / (self.control_hz * self._substeps)
        self._max_steer_rad = self.limits.max_steering_rad
        rate = cfg["max_steering_rate_deg_s"]
        self._max_steer_step_rad = math.inf if rate is None else math.radians(rate) * self._dt_s
        self._accel_step_mps = self.limits.max_accel_mps2 * self._dt_s
        self._brake_step_mps = self.limits.max_brake_mps2 * self._dt_s
        self._grip_mps2 = self.limits.friction_mu * self.limits.gravity_mps2  # max lateral acceleration
        self.states = CarStates.zeros(self.num_cars)
        self.curvature_per_m = np.zeros(self.num_cars)  # path curvature in the last sub-step (after the grip limit)
        self.understeer = np.zeros(self.num_cars, dtype=bool)  # the grip limit cut the curvature during the last step
        self.steering_cmd_rad = np.zeros(self.num_cars)
        self.speed_cmd_mps = np.zeros(self.num_cars)
        # With control latency the command waiting to reach each car: the action of the step before (0, 0 after a reset).
        self.control_latency_steps = int(cfg["control_latency_steps"])
        self._held_steering_rad, self._held_speed_mps = np.zeros(self.num_cars), np.zeros(self.num_cars)
        self.tracks: list[Any] = [None] * self.num_cars

    def reset_cars(self, indices: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray, tracks: list,
                   speed_mps: np.ndarray | None = None) -> CarStates:
        """Place cars `indices` with straight wheels at the poses, moving at `speed_mps` (clipped to 0..max)."""
        idx = np.asarray(indices, dtype=np.intp)
        x, y, yaw = (np.asarray(a, dtype=np.float64).reshape(-1) for a in (x_m, y_m, yaw_rad))
        speed = np.zeros(len(idx)) if speed_mps is None else np.asarray(speed_mps, dtype=np.float64).reshape(-1)
        st, lim = self.states, self.limits
        ok = _reset_cars(idx, x, y, yaw, speed, lim.max_speed_mps, st.x_m, st.y_m, st.yaw_rad, st.speed_mps, st.steering_rad,
                         st.time_s, 0.5 * lim.wheelbase_m, 0.5 * lim.axle_track_m, st.wheel_positions_m, self.curvature_per_m,
                         self.understeer, self.steering_cmd_rad, self.speed_cmd_mps)
        if not ok:
            raise ValueError(f"BuiltinSimulator.reset: pose and speed must be finite, got x={x}, y={y}, yaw={yaw}, speed_mps={speed}")
        self._held_steering_rad[idx], self._held_speed_mps[idx] = 0.0, 0.0  # a new episode's first step applies a neutral command
        for i, track in zip(idx.tolist(), tracks, strict=True):
            self.tracks[i] = track
        return st

    def step(self, steering_rad: np.ndarray, speed_mps: np.ndarray) -> CarStates:
        """Advance every car one control period towards its steering and target-speed command (one compiled call).

        With control_latency_steps 1 the car applies the command of the previous call (0, 0 on a new episode's
        first step) and holds this one for the next.
        """
        steer, speed = _commands(steering_rad, self.num_cars), _commands(speed_mps, self.num_cars)
        new_steer, new_speed = steer, speed
        if self.control_latency_steps:
            if not (np.isfinite(steer).all() and np.isfinite(speed).all()):
                raise ValueError(f"BuiltinSimulator.step: commands must be finite, got steering_rad={steer}, speed_mps={speed}")
            steer, speed = self._held_steering_rad, self._held_speed_mps  # read only by the physics, refilled after it
        st = self.states
        lim = self.limits
        ok = _physics_step(st.x_m, st.y_m, st.yaw_rad, st.speed_mps, st.steering_rad, steer, speed, self._max_steer_rad,
                           lim.max_speed_mps, self.steering_cmd_rad, self.speed_cmd_mps, self._substeps, self._dt_s,
                           1.0 / lim.wheelbase_m, self._max_steer_step_rad, self._accel_step_mps, self._brake_step_mps,
                           self._grip_mps2, self.curvature_per_m, self.understeer, st.time_s, 1.0 / self.control_hz,
                           0.5 * lim.wheelbase_m, 0.5 * lim.axle_track_m, st.wheel_positions_m)
        if not ok:
            raise ValueError(f"BuiltinSimulator.step: commands must be finite, got steering_rad={steer}, speed_mps={speed}")
        if self.control_latency_steps:  # copies: the caller may reuse its arrays before the next step
            np.copyto(self._held_steering_rad, new_steer)
            np.copyto(self._held_speed_mps, new_speed)
        return st

    def camera(self, track: Any) -> Any:
        """The ground camera of `track` for this simulator's lens, rasterised once and kept on the track itself.

        Rasterising costs ~30 ms (64x48) per track, and a procedural pool's tracks come back episode
        after episode: a camera kept only while some car drives its track was rebuilt at almost every
        reset (most of a procedural camera step's time). Kept on the track, it lives exactly as long as
        the track does (a pool's tracks for the process, a fresh track until its last car leaves it;
        ~1.5 MB per 64x48 camera of a generated track: the procedural configs' 200 pool tracks hold ~300 MB).
        """
        c = self.config["camera"]
        key = (self.camera_spec, float(c["texture_resolution_m"]), bool(c["centerline"]))
        cameras = track.__dict__.setdefault("_ground_cameras", {})
        cam = cameras.get(key)
        if cam is None:
            from control.sim.camera import GroundCamera

            cam = cameras[key] = GroundCamera(track, spec=self.camera_spec, texture_resolution_m=c["texture_resolution_m"],
                                              centerline=c["centerline"])
        return cam

    def camera_images(self, indices: np.ndarray) -> np.ndarray:
        """Frames of cars `indices`: (k, H, W) gray or (k, H, W, 3) RGB, one gather per track."""
        idx = np.asarray(indices, dtype=np.intp)
        spec = self.camera_spec
        shape = (len(idx), spec.height_px, spec.width_px) + ((3,) if spec.rgb else ())
        out = np.empty(shape, dtype=np.uint8)
        st = self.states
        tracks = [self.tracks[i] for i in idx.tolist()]
        first = tracks[0] if tracks else None
        if all(t is first for t in tracks):
            groups = [(first, np.arange(len(idx)))]
        else:
            groups = [(t, np.array([j for j, u in enumerate(tracks) if u is t])) for t in {id(t): t for t in tracks}.values()]
        for track, rows in groups:
            cars = idx[rows]
            out[rows] = self.camera(track).render_batch(st.x_m[cars], st.y_m[cars], st.yaw_rad[cars])
        return out

    def close(self) -> None:
        """Nothing to release: the cameras live on their tracks (see camera)."""


class BuiltinSimulator(SimulatorBackend):
    """One car on one track: the batch of one of `BuiltinBatch` (the same physics and camera code)."""

    def __init__(self, track: Any, config: Mapping[str, Any] | None = None) -> None:
        self.track = track
        self.batch = BuiltinBatch(1, config)
        self.config = self.batch.config
        self.limits = self.batch.limits
        self.control_hz = self.limits.control_hz
        self._state: VehicleState | None = None

    @property
    def state(self) -> VehicleState:
        """The state after the latest reset/step."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before reading the state")
        return self._state

    def reset(self, pose: Pose, speed_mps: float = 0.0) -> VehicleState:
        """Place the car at `pose` with straight wheels, moving at `speed_mps` (clipped to 0..max)."""
        self.batch.reset_cars(np.zeros(1, dtype=np.intp), [pose.x_m], [pose.y_m], [pose.yaw_rad], [self.track], [speed_mps])
        self._state = self._make_state()
        return self._state

    def step(self, steering_rad: float, speed_mps: float) -> VehicleState:
        """Advance one control period: steer towards `steering_rad`, drive towards target `speed_mps`."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before step()")
        self.batch.step(np.array([steering_rad], dtype=np.float64), np.array([speed_mps], dtype=np.float64))
        self._state = self._make_state()
        return self._state

    def _make_state(self) -> VehicleState:
        """The one car's state with the physics diagnostics."""
        b = self.batch
        state = b.states.car(0)
        kappa = float(b.curvature_per_m[0])
        state.extra = {
            "curvature_per_m": kappa,  # path curvature in the last sub-step (after the grip limit)
            "lateral_accel_mps2": state.speed_mps**2 * kappa,
            "understeer": bool(b.understeer[0]),  # the grip limit cut the curvature during this step
            "steering_cmd_rad": float(b.steering_cmd_rad[0]),
            "speed_cmd_mps": float(b.speed_cmd_mps[0]),
        }
        return state

    def camera_image(self) -> np.ndarray:
        """The front camera frame for the current pose: (H, W) gray, or (H, W, 3) RGB if camera.rgb."""
        if self._state is None:
            raise RuntimeError("BuiltinSimulator.reset() must be called before camera_image()")
        return self.batch.camera_images(np.zeros(1, dtype=np.intp))[0]

    def close(self) -> None:
        """Drop the camera texture; the simulator holds no other resources."""
        self.batch.close()
