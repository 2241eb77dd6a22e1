"""The simulator-backend interface: vehicles, controls and sensors; no rewards, no RLlib.

Two shapes of backend share one contract, `BatchedSimulator` (N cars as arrays, one call steps
them all): the built-in simulator is batched natively; a one-car backend (CARLA: one car per
server) implements `SimulatorBackend` and is seen through `SingleCarBatch` as the batch of one.
Each backend declares its car's `VehicleLimits`; every other layer reads the limits from there.
"""
from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Pose:
    """A planar pose: position in metres, yaw in radians (counter-clockwise from +x)."""

    x_m: float
    y_m: float
    yaw_rad: float


@dataclass(frozen=True)
class VehicleLimits:
    """What a backend's car can do: the one place a car limit is written down."""

    max_speed_mps: float  # top speed
    max_steering_deg: float  # steering lock, either side
    wheelbase_m: float  # front-to-rear axle distance
    axle_track_m: float  # left-to-right wheel distance
    control_hz: float  # control steps per simulated second
    max_accel_mps2: float  # forward acceleration limit
    max_brake_mps2: float  # braking deceleration limit
    friction_mu: float  # tyre-road friction: lateral acceleration <= friction_mu * gravity_mps2
    gravity_mps2: float = 9.81

    @property
    def max_steering_rad(self) -> float:
        """The steering lock in radians."""
        return math.radians(self.max_steering_deg)

    @property
    def max_curvature_per_m(self) -> float:
        """The tightest path curvature full lock gives (kinematic bicycle), 1/m."""
        return math.tan(self.max_steering_rad) / self.wheelbase_m


# AWS DeepRacer's 1/18 car: the built-in backend's defaults and the reference a one-car backend
# without its own figures is compared against.
DEEPRACER_LIMITS = VehicleLimits(
    max_speed_mps=4.0, max_steering_deg=30.0, wheelbase_m=0.165, axle_track_m=0.15, control_hz=15.0,
    max_accel_mps2=3.0, max_brake_mps2=6.0, friction_mu=0.7,
)


@dataclass(frozen=True)
class CameraSpec:
    """The front camera every backend renders: size, colour, lens and mounting."""

    width_px: int = 160
    height_px: int = 120
    rgb: bool = False  # True: (H, W, 3) RGB; False: (H, W) gray
    fov_deg: float = 120.0  # horizontal field of view
    height_m: float = 0.10  # lens height above the ground
    pitch_down_deg: float = 15.0  # optical axis tilted this far below the horizon (positive = down)
    x_offset_m: float = 0.08  # lens position ahead of the car's centre


def wheel_positions_m(x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray, wheelbase_m: float, axle_track_m: float) -> np.ndarray:
    """(N, 4, 2) wheel contact points FL, FR, RL, RR of cars centred at (x_m, y_m) heading yaw_rad."""
    x, y, yaw = np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64), np.asarray(yaw_rad, dtype=np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    half_l, half_w = 0.5 * wheelbase_m, 0.5 * axle_track_m
    fx, fy = c * half_l, s * half_l  # centre to front axle
    lx, ly = -s * half_w, c * half_w  # axle centre to left wheel
    out = np.empty(x.shape + (4, 2))
    out[..., 0, 0], out[..., 0, 1] = x + fx + lx, y + fy + ly
    out[..., 1, 0], out[..., 1, 1] = x + fx - lx, y + fy - ly
    out[..., 2, 0], out[..., 2, 1] = x - fx + lx, y - fy + ly
    out[..., 3, 0], out[..., 3, 1] = x - fx - lx, y - fy - ly
    return out


@dataclass
class VehicleState:
    """One car after a step (a one-car backend's answer, and the N = 1 view of `CarStates`)."""

    x_m: float
    y_m: float
    yaw_rad: float
    speed_mps: float
    steering_rad: float
    wheel_positions_m: np.ndarray  # (4, 2): front-left, front-right, rear-left, rear-right
    time_s: float = 0.0  # simulated time since reset
    is_crashed: bool = False  # collision reported by the backend (CARLA); builtin: False
    lane_invasion: bool = False  # backend saw the car cross a lane marking (CARLA only)
    extra: dict = field(default_factory=dict)  # backend-specific diagnostics


@dataclass
class CarStates:
    """N cars as arrays of shape (N,): what a batched backend holds and returns."""

    x_m: np.ndarray
    y_m: np.ndarray
    yaw_rad: np.ndarray
    speed_mps: np.ndarray
    steering_rad: np.ndarray
    time_s: np.ndarray
    is_crashed: np.ndarray  # bool
    wheel_positions_m: np.ndarray  # (N, 4, 2)

    @classmethod
    def zeros(cls, num_cars: int) -> "CarStates":
        """N cars at the origin, at rest."""
        z = np.zeros(num_cars)
        return cls(z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), z.copy(), np.zeros(num_cars, dtype=bool), np.zeros((num_cars, 4, 2)))

    def car(self, i: int) -> VehicleState:
        """Car `i` as a VehicleState (copies)."""
        return VehicleState(
            x_m=float(self.x_m[i]), y_m=float(self.y_m[i]), yaw_rad=float(self.yaw_rad[i]), speed_mps=float(self.speed_mps[i]),
            steering_rad=float(self.steering_rad[i]), wheel_positions_m=self.wheel_positions_m[i].copy(),
            time_s=float(self.time_s[i]), is_crashed=bool(self.is_crashed[i]),
        )

    def set_car(self, i: int, state: VehicleState) -> None:
        """Overwrite car `i` with a one-car backend's state."""
        self.x_m[i], self.y_m[i], self.yaw_rad[i] = state.x_m, state.y_m, state.yaw_rad
        self.speed_mps[i], self.steering_rad[i], self.time_s[i] = state.speed_mps, state.steering_rad, state.time_s
        self.is_crashed[i] = state.is_crashed
        self.wheel_positions_m[i] = state.wheel_positions_m


class SimulatorBackend(abc.ABC):
    """One car on one track. `step` advances one control period (1 / control_hz seconds)."""

    control_hz: float = DEEPRACER_LIMITS.control_hz

    @abc.abstractmethod
    def reset(self, pose: Pose, speed_mps: float = 0.0) -> VehicleState:
        """Place the car at `pose` (standing still unless `speed_mps` > 0) and return its state."""

    @abc.abstractmethod
    def step(self, steering_rad: float, speed_mps: float) -> VehicleState:
        """Apply a steering-angle and target-speed command for one control period."""

    def camera_image(self) -> np.ndarray | None:
        """The front camera's latest frame (H, W, 3) uint8, or None when the backend has no camera."""
        return None

    def close(self) -> None:
        """Release everything this backend created (actors, servers, world settings)."""


class BatchedSimulator(abc.ABC):
    """N cars; `step` advances all of them one control period. Cars may drive different tracks."""

    limits: VehicleLimits
    num_cars: int
    states: CarStates

    @abc.abstractmethod
    def reset_cars(self, indices: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray, tracks: list) -> CarStates:
        """Place cars `indices` at rest at the given poses on `tracks` (one per car); returns all states."""

    @abc.abstractmethod
    def step(self, steering_rad: np.ndarray, speed_mps: np.ndarray) -> CarStates:
        """Steering-angle and target-speed commands (N,) for one control period; returns all states."""

    def camera_images(self, indices: np.ndarray) -> np.ndarray | None:
        """Frames (k, H, W) gray or (k, H, W, 3) RGB uint8 of cars `indices`, or None without a camera."""
        return None

    def close(self) -> None:
        """Release everything this backend created."""


class SingleCarBatch(BatchedSimulator):
    """A one-car `SimulatorBackend` (CARLA: one car per server) seen as a batch of one."""

    num_cars = 1

    def __init__(self, backend: SimulatorBackend, limits: VehicleLimits | None = None) -> None:
        self.backend = backend
        self.limits = limits or getattr(backend, "limits", None) or DEEPRACER_LIMITS
        self.states = CarStates.zeros(1)

    def reset_cars(self, indices: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray, tracks: list) -> CarStates:
        """Reset the one car (index 0)."""
        self.states.set_car(0, self.backend.reset(Pose(float(x_m[0]), float(y_m[0]), float(yaw_rad[0]))))
        return self.states

    def step(self, steering_rad: np.ndarray, speed_mps: np.ndarray) -> CarStates:
        """Step the one car; a SimulatorError propagates to the env."""
        self.states.set_car(0, self.backend.step(float(steering_rad[0]), float(speed_mps[0])))
        return self.states

    def camera_images(self, indices: np.ndarray) -> np.ndarray | None:
        """The backend's latest frame as a batch of one."""
        image = self.backend.camera_image()
        return None if image is None else image[None]

    def close(self) -> None:
        """Close the backend."""
        self.backend.close()


class SimulatorError(RuntimeError):
    """A backend fault the env can recover from by ending the episode as truncated."""
