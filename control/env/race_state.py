"""The public state of a race, as the layers that read it (observations, render) see it.

`RaceView` is what an observation type reads of the race core (`control/env/race.py` provides
it); `RaceState` is what render and a person watching read of one car's race. Both live here,
below the modules that build them, so that reading a race never imports the race.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from control.sim.base import BatchedSimulator, CarStates, VehicleLimits, VehicleState
from control.sim.objects import RaceObjects
from control.track.track import Track


class RaceView(Protocol):
    """N cars racing: their states, the car's limits, the simulator and the tracks they drive."""

    config: dict[str, Any]  # the validated env_config
    num_cars: int
    sim: BatchedSimulator
    states: CarStates
    rngs: list[np.random.Generator | None]  # each car's generator (drawn from at its episode starts)
    race_objects: RaceObjects | None  # boxes or bot cars on the track (env_config.race); None in time trials

    @property
    def limits(self) -> VehicleLimits:
        """The backend's VehicleLimits."""

    def groups_by_track(self, idx: np.ndarray) -> list[tuple[Track, np.ndarray]]:
        """(driving track, positions within idx) for each distinct track of cars idx."""


@dataclass(frozen=True)
class RaceState:
    """What render and a person watching need of the car's race right now (public, read-only)."""

    track: Track
    direction: str
    vehicle: VehicleState
    trail: list[tuple[float, float, float]]  # (x_m, y_m, speed_mps) since reset
    params: dict[str, Any]
    steering_cmd_deg: float
    speed_cmd_mps: float
    action_index: int
    reward: float
    lap_elapsed_s: float  # time since the current lap started
    laps_completed: int
    max_speed_mps: float
    lidar_angles_rad: np.ndarray | None  # the rays' angles relative to the heading, or None without lidar
    lidar_distances_m: np.ndarray | None
    lidar_max_range_m: float
    camera_image: np.ndarray | None
    # Boxes or bot cars of the car's race (env_config.race), (M, 5): x_m, y_m, yaw_rad, half_length_m, half_width_m;
    # None in a time trial. objects_are_bots tells head-to-bot's bot cars from object avoidance's boxes.
    object_rectangles: np.ndarray | None = None
    objects_are_bots: bool = False
    lidar_name: str = "virtual lidar"  # the ray sensor's name in the render's lidar panel
