"""The simulator-backend interface: vehicles, controls and sensors; no rewards, no RLlib."""
from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Pose:
    """A planar pose: position in metres, yaw in radians (counter-clockwise from +x)."""

    x_m: float
    y_m: float
    yaw_rad: float


@dataclass
class VehicleState:
    """What the environment needs to know about the ego vehicle after a step."""

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


class SimulatorBackend(abc.ABC):
    """One car on one track. `step` advances one control period (1 / control_hz seconds)."""

    control_hz: float = 15.0

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


class SimulatorError(RuntimeError):
    """A backend fault the env can recover from by ending the episode as truncated."""
