"""DeepRacer's lidar as observation types (`deepracer_lidar`), and the Evo car's camera + lidar (`deepracer_evo`).

What the DeepRacer simulator defines, and where (aws-deepracer-community/deepracer-simapp, bundle/markov/):
- sensors/constants.py (the values racecar.launch gives the Gazebo ray sensor): 64 samples from
  -2.61799 to +2.61799 rad (±150°: a 300° view, the back 60° hidden, as on the Evo car), ranges
  0.15..12.0 m, Gaussian noise σ 0.01 m. Gazebo spaces the samples evenly, both ends included.
- LIDAR (sensors/utils.py: space Box(0.15, 1.0, 64)): the ranges in metres, through the input filter
  ObservationClippingFilter(0.15, 1.0) (agent_ctrl/utils.py): clipped to 0.15..1.0 m.
- SECTOR_LIDAR (environments/constants.py: NUMBER_OF_LIDAR_SECTORS = 8, SECTOR_LIDAR_CLIPPING_DIST = 0.5;
  ObservationBinarySectorFilter): the minimum of each sector's consecutive samples, 1.0 when it is
  nearer than 0.5 m, else 0.0 (space Box(0, 1, 8)).
- DISCRETIZED_SECTOR_LIDAR (filters/observation/observation_sector_discretize_filter.py): each sector's
  minimum clipped to clipping_dist, binned into num_values_per_sector bins of clipping_dist / V, one-hot;
  the bin "nothing nearer than clipping_dist" is dropped, so a clear sector reads all zeros.
Samples run from the car's right (-150°) to its left (+150°), as a ROS LaserScan orders them (angle_min
first). The rays are cast from the car's centre on the track geometry (borders, compiled ray caster) and
stop at race objects (boxes, bots), like `vlidar`. The sensor's noise is off by default (exact readings);
`noise_stddev_m: 0.01` adds Gazebo's Gaussian noise to every ray that hits something within reach.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

import control.env.observations as observations
from control.config_schema import Expect, Flag, Invalid, NonNegativeNumber, Number, PositiveNumber, PositiveWhole, Section, Text, one_of
from control.env.observations import CameraObservation, CombinedObservation, ObservationType, StereoCameraObservation
from control.env.typed_section import parse_typed_section

if TYPE_CHECKING:
    from control.env.race_state import RaceView

# DeepRacer's simulated lidar (deepracer-simapp bundle/markov/sensors/constants.py).
LIDAR_SAMPLES = 64
LIDAR_MAX_ANGLE_RAD = 2.61799  # samples from -this to +this (150° to 5 decimals)
LIDAR_FOV_DEG = math.degrees(2 * LIDAR_MAX_ANGLE_RAD)
LIDAR_MIN_RANGE_M = 0.15
LIDAR_MAX_RANGE_M = 12.0
LIDAR_CLIPPING_DIST_M = 1.0  # ObservationClippingFilter(0.15, 1.0) on LIDAR
NUMBER_OF_LIDAR_SECTORS = 8  # bundle/markov/environments/constants.py
SECTOR_LIDAR_CLIPPING_DIST_M = 0.5

LIDAR_MODES = ("raw", "sectors", "discretized")  # DeepRacer's LIDAR, SECTOR_LIDAR, DISCRETIZED_SECTOR_LIDAR


class DeepRacerLidarObservation(ObservationType):
    """DeepRacer's lidar: 64 ranges over 300° (metres, clipped), or its 8 binary sectors, or one-hot sector bins."""

    display_name = "DeepRacer lidar"  # the render's lidar panel title

    class Settings(Section):
        """env_config.observation for type deepracer_lidar (defaults: DeepRacer's simulator)."""

        mode: Annotated[Text, one_of(*LIDAR_MODES)] = Field(
            "raw", description="raw: ranges in m (LIDAR); sectors: 0/1 per sector (SECTOR_LIDAR); discretized: one-hot bins per sector")
        num_samples: PositiveWhole = Field(LIDAR_SAMPLES, description="rays spread evenly over fov_deg, both ends included")
        fov_deg: Annotated[Number, Field(gt=0, le=360), Expect("a number in (0, 360] degrees")] = Field(
            LIDAR_FOV_DEG, description="field of view centred on the heading, degrees (DeepRacer: 300, the back 60° hidden)")
        min_range_m: PositiveNumber = Field(LIDAR_MIN_RANGE_M, description="nearer readings read this, m")
        max_range_m: PositiveNumber = Field(LIDAR_MAX_RANGE_M, description="the sensor's range, m")
        clipping_dist_m: PositiveNumber = Field(LIDAR_CLIPPING_DIST_M, description="raw: ranges are clipped to min_range_m..this, m")
        num_sectors: PositiveWhole = Field(NUMBER_OF_LIDAR_SECTORS, description="sectors, discretized: consecutive groups of samples")
        sector_clipping_dist_m: PositiveNumber = Field(
            SECTOR_LIDAR_CLIPPING_DIST_M, description="sectors: 1 when the sector's nearest reading is nearer; discretized: the bins' range, m")
        num_values_per_sector: PositiveWhole = Field(1, description="discretized: bins per sector")
        ego_features: Flag = Field(False, description="append speed / max speed and steering / max steering (DeepRacer's lidar has none)")
        noise_stddev_m: NonNegativeNumber = Field(0.0, description="Gaussian noise on each hit, m (DeepRacer's Gazebo: 0.01; 0: exact)")

        @model_validator(mode="after")
        def _consistent(self) -> DeepRacerLidarObservation.Settings:
            if self.min_range_m >= self.max_range_m:
                raise Invalid(f"min_range_m {self.min_range_m} must be below max_range_m {self.max_range_m}")
            # A ray that hits nothing reads its cap: the clipping distance, as DeepRacer's filters read Gazebo's inf.
            key = "clipping_dist_m" if self.mode == "raw" else "sector_clipping_dist_m"  # the one this mode reads
            value = getattr(self, key)
            if not self.min_range_m < value <= self.max_range_m:
                raise Invalid(f"{key} {value} must be above min_range_m {self.min_range_m} and at most max_range_m {self.max_range_m}")
            if self.mode != "raw" and self.num_samples % self.num_sectors:
                raise Invalid(f"num_samples {self.num_samples} must divide into num_sectors {self.num_sectors} equal sectors "
                              f"(DeepRacer: 64 samples, 8 sectors)")
            return self

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        n, fov = int(cfg["num_samples"]), float(cfg["fov_deg"])
        # Gazebo's ray sensor: sample i at min_angle + i * (max_angle - min_angle) / (samples - 1).
        self.angles_rad = np.radians(np.linspace(-fov / 2, fov / 2, n) if n > 1 else np.zeros(1))
        self._cos_rel, self._sin_rel = np.cos(self.angles_rad), np.sin(self.angles_rad)
        self.mode = str(cfg["mode"])
        # Every mode reads min(distance, its clipping distance): rays cast only that far read the same, for less work.
        self.max_range_m = float(cfg["clipping_dist_m"] if self.mode == "raw" else cfg["sector_clipping_dist_m"])
        self.min_range_m = float(cfg["min_range_m"])
        self.last_distances_m = np.full((1, n), self.max_range_m)  # (N, R) of the latest observe, for render
        self.noise_stddev_m = float(cfg["noise_stddev_m"])
        self._noise_rngs: list[np.random.Generator | None] = []  # per car: a child of its generator, drawn anew per episode

    def _width(self) -> int:
        """Length of the sensor part of the observation vector."""
        if self.mode == "raw":
            return len(self.angles_rad)
        sectors = int(self.config["num_sectors"])
        return sectors if self.mode == "sectors" else sectors * int(self.config["num_values_per_sector"])

    def space(self) -> gym.Space:
        width = self._width()
        low, high = (self.min_range_m, self.max_range_m) if self.mode == "raw" else (0.0, 1.0)
        lows, highs = [np.full(width, low)], [np.full(width, high)]
        if self.config["ego_features"]:
            lows.append(np.array([0.0, -1.0]))  # speed, signed steering
            highs.append(np.ones(2))
        return gym.spaces.Box(np.concatenate(lows).astype(np.float32), np.concatenate(highs).astype(np.float32), dtype=np.float32)

    def distances_m(self, race: "RaceView", idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(k, R) ray distances of cars idx to the borders and race objects, capped at max_range_m; and their ego features."""
        rows = observations.cast_rays(self, race, idx)
        return self.last_distances_m[idx], (rows[:, len(self.angles_rad):] if self.config["ego_features"] else None)

    def add_noise(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray, distances_m: np.ndarray) -> np.ndarray:
        """Distances with Gaussian noise on the rays that hit within reach, from each car's own noise stream."""
        if len(self._noise_rngs) != race.num_cars:
            self._noise_rngs = [None] * race.num_cars
        fresh = np.full(len(idx), bool(reset)) if np.ndim(reset) == 0 else np.asarray(reset, dtype=bool)[idx]
        noise = np.empty(distances_m.shape)
        for j, c in enumerate(idx.tolist()):  # only with noise on: one draw per car, from its own stream (batch-size free)
            if fresh[j] or self._noise_rngs[c] is None:  # a child of the car's generator: a seeded reset repeats the noise
                self._noise_rngs[c] = race.rngs[c].spawn(1)[0]
            noise[j] = self._noise_rngs[c].normal(0.0, self.noise_stddev_m, distances_m.shape[1])
        hit = distances_m < self.max_range_m  # a ray that saw nothing within reach reads the cap, as Gazebo's inf clipped
        return np.where(hit, distances_m + noise, distances_m)

    def readings(self, distances_m: np.ndarray) -> np.ndarray:
        """(k, width) the sensor's observation from (k, R) ray distances, as DeepRacer's input filter computes it."""
        distances_m = np.clip(distances_m, self.min_range_m, self.max_range_m)  # nothing reads nearer than the sensor's minimum
        if self.mode == "raw":  # ObservationClippingFilter(min_range, clipping_dist)
            return distances_m
        sectors = int(self.config["num_sectors"])
        nearest_m = distances_m.reshape(len(distances_m), sectors, -1).min(axis=2)  # consecutive samples per sector
        clip_m = self.max_range_m  # sector_clipping_dist_m
        if self.mode == "sectors":  # ObservationBinarySectorFilter: something nearer than the clipping distance
            return (nearest_m < clip_m).astype(np.float64)
        # ObservationSectorDiscretizeFilter: bin index floor(d / (clip / V)); bin V (nothing within clip) is dropped.
        values = int(self.config["num_values_per_sector"])
        bins = np.floor(nearest_m / (clip_m / values)).astype(np.intp)
        one_hot = bins[..., None] == np.arange(values)
        return one_hot.reshape(len(distances_m), sectors * values).astype(np.float64)

    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> np.ndarray:
        distances_m, ego = self.distances_m(race, idx)
        if self.noise_stddev_m > 0:
            distances_m = self.add_noise(race, idx, reset, distances_m)
        sensor = self.readings(distances_m)
        obs = sensor if ego is None else np.concatenate((sensor, ego), axis=1)
        return obs.astype(np.float32)


class DeepRacerEvoObservation(CombinedObservation):
    """DeepRacer Evo's sensors: a Dict of the front camera image, or its stereo pair (`camera`), and DeepRacer's lidar (`lidar`)."""

    class Settings(Section):
        """env_config.observation for type deepracer_evo."""

        camera: CameraObservation.Settings = Field(default_factory=CameraObservation.Settings, description="the camera's keys (type camera)")
        lidar: DeepRacerLidarObservation.Settings = Field(default_factory=DeepRacerLidarObservation.Settings,
                                                          description="the lidar's keys (type deepracer_lidar)")
        stereo_baseline_m: Annotated[PositiveNumber | None, Expect("null or a positive number of metres")] = Field(
            None, description="null: one front camera (FRONT_FACING_CAMERA); a baseline: two lenses this far apart "
                              "(STEREO_CAMERAS, DeepRacer: 0.06), type stereo_camera's image, m")

    def __init__(self, config: Mapping[str, Any]) -> None:  # noqa: D107 - the parent's vlidar is replaced, not built
        self.config = parse_typed_section(config, self.Settings, "observation")
        baseline_m = self.config["stereo_baseline_m"]
        self.camera = (CameraObservation({"type": "camera", **self.config["camera"]}) if baseline_m is None else
                       StereoCameraObservation({"type": "stereo_camera", **self.config["camera"], "baseline_m": baseline_m}))
        self.lidar = DeepRacerLidarObservation({"type": "deepracer_lidar", **self.config["lidar"]})
        self.vlidar = self.lidar  # the ray sensor the env's render and race state read (as type both's)

    def space(self) -> gym.Space:
        return gym.spaces.Dict({"camera": self.camera.space(), "lidar": self.lidar.space()})

    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> dict[str, np.ndarray]:
        return {"camera": self.camera.observe(race, idx, reset), "lidar": self.lidar.observe(race, idx, reset)}


# Registered on import of the control.env package (control/env/__init__.py imports this module).
observations.OBSERVATION_TYPES.update(deepracer_lidar=DeepRacerLidarObservation, deepracer_evo=DeepRacerEvoObservation)
