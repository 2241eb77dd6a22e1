"""Observation types: virtual lidar (rays to the track borders), front camera, stereo cameras, or both.

Each type observes N cars at once from the race core's public state (`control/env/race.py`):
`observe(race, idx, reset)` returns the observations of cars `idx` stacked on a first axis.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import gymnasium as gym
import numpy as np
from pydantic import Field, StrictFloat, field_validator

from control.config_schema import Expect, Flag, Number, PositiveNumber, PositiveWhole, Section
from control.env.typed_section import parse_typed_section, pick_type
from control.errors import ConfigError
from control.sim.appearance import AppearanceRandomization, CameraAppearance

if TYPE_CHECKING:
    from control.env.race_state import RaceView


class ObservationType(abc.ABC):
    """Builds the observations of N cars from the race's current state."""

    Settings: type[Section] = Section  # the type's keys: defaults, units, checks

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = parse_typed_section(config, self.Settings, "observation")

    @abc.abstractmethod
    def space(self) -> gym.Space:
        """The gymnasium observation space of one car."""

    @abc.abstractmethod
    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> Any:
        """Observations of cars `idx` (first axis: the cars); reset=True (or an (N,) mask) starts their episodes (frame stacks)."""


class VirtualLidarObservation(ObservationType):
    """Distances from the car to the track borders along fixed rays, normalised to [0, 1]."""

    display_name = "virtual lidar"  # the render's lidar panel title

    class Settings(Section):
        """env_config.observation for type vlidar."""

        num_rays: PositiveWhole = Field(32, description="rays spread evenly over fov_deg (ignored when angles_deg is given)")
        fov_deg: Annotated[Number, Field(gt=0, le=360), Expect("a number in (0, 360] degrees")] = Field(
            180.0, description="field of view centred on the car's heading, degrees")
        angles_deg: Annotated[list[StrictFloat] | None, Expect("null or a non-empty list of degrees")] = Field(
            None, description="explicit ray angles relative to the heading, degrees (left positive)")
        max_range_m: PositiveNumber = Field(5.0, description="rays are capped here; observation = distance / max_range_m, m")
        ego_features: Flag = Field(True, description="append speed / max speed and steering / max steering")

        @field_validator("angles_deg")
        @classmethod
        def _not_empty(cls, value: list[float] | None) -> list[float] | None:
            if value is not None and not value:
                raise ValueError("null or a non-empty list of degrees")
            return value

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        if cfg["angles_deg"] is not None:
            angles = np.asarray(cfg["angles_deg"], dtype=np.float64)
        else:
            n, fov = int(cfg["num_rays"]), float(cfg["fov_deg"])
            angles = np.linspace(-fov / 2, fov / 2, n) if n > 1 else np.zeros(1)
        self.angles_rad = np.radians(angles)
        self._cos_rel, self._sin_rel = np.cos(self.angles_rad), np.sin(self.angles_rad)  # ray directions in the car frame
        self.max_range_m = float(cfg["max_range_m"])
        self.last_distances_m = np.full((1, len(angles)), self.max_range_m)  # (N, R) of the latest observe, for render

    def space(self) -> gym.Space:
        n = len(self.angles_rad)
        low = np.zeros(n + (2 if self.config["ego_features"] else 0), dtype=np.float32)
        high = np.ones_like(low)
        if self.config["ego_features"]:
            low[-1] = -1.0  # steering is signed
        return gym.spaces.Box(low, high, dtype=np.float32)

    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> np.ndarray:
        return cast_rays(self, race, idx)


def cast_rays(sensor: Any, race: "RaceView", idx: np.ndarray) -> np.ndarray:
    """The ray sensor's kernel rows (k, R [+ 2 ego]) float32 of cars idx: distance / max_range_m per ray, then speed and steering.

    Rays stop at the borders and at the race's boxes and bots; sensor.last_distances_m[idx] gets the distances in metres.
    `sensor`: a ray observation type (angles_rad, _cos_rel, _sin_rel, max_range_m, last_distances_m, config["ego_features"]).
    """
    from control.track.kernels import lidar_observe

    st = race.states
    n = len(sensor.angles_rad)
    if sensor.last_distances_m.shape[0] != race.num_cars:
        sensor.last_distances_m = np.full((race.num_cars, n), sensor.max_range_m)
    ego = bool(sensor.config["ego_features"])
    obs = np.empty((len(idx), n + 2 if ego else n), dtype=np.float32)  # computed in float64, stored as float32
    limits = race.limits
    for track, rows in race.groups_by_track(idx):
        out = obs if len(rows) == len(idx) else np.empty((len(rows), obs.shape[1]), dtype=np.float32)
        lidar_observe(idx[rows] if out is not obs else idx, st.x_m, st.y_m, st.yaw_rad, st.speed_mps, st.steering_rad,
                      sensor._cos_rel, sensor._sin_rel, sensor.max_range_m, *track.lidar_grid(sensor.max_range_m), ego,
                      limits.max_speed_mps, limits.max_steering_rad, sensor.last_distances_m, out)
        if out is not obs:
            obs[rows] = out
    objects = race.race_objects
    if objects is not None and objects.num_objects:
        from control.sim.objects import lower_rays_to_objects

        # Rays stop at boxes and bots too: each ray's border distance is lowered to the nearest object on it, in place.
        lower_rays_to_objects(objects, idx, st.x_m, st.y_m, st.yaw_rad, sensor.angles_rad, sensor.max_range_m, sensor.last_distances_m, obs)
    return obs


class CameraObservation(ObservationType):
    """The front camera: (H, W, C × frame_stack) uint8, grayscale by default (DeepRacer's 160×120)."""

    class Settings(Section):
        """env_config.observation for type camera."""

        width_px: PositiveWhole = Field(160, description="image width, pixels (DeepRacer: 160)")
        height_px: PositiveWhole = Field(120, description="image height, pixels (DeepRacer: 120)")
        rgb: Flag = Field(False, description="3 colour channels instead of 1 gray channel")
        frame_stack: PositiveWhole = Field(1, description="consecutive frames stacked on the channel axis")
        normalize: Flag = Field(False, description="float32 in [0, 1] instead of uint8 (RLlib's default CNN wants float)")
        randomize: AppearanceRandomization = Field(default_factory=AppearanceRandomization,
                                                   description="per-episode looks (domain randomisation; off by default)")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        self.channels = 3 if cfg["rgb"] else 1
        self._stack: np.ndarray | None = None  # (N, H, W, C * frame_stack), oldest frame first
        self.appearance = CameraAppearance(cfg["randomize"], self.channels)
        self.object_pixels = np.zeros(0, dtype=np.int64)  # (N,) pixels showing a box or bot in each car's latest built-in frame

    def space(self) -> gym.Space:
        shape = (self.config["height_px"], self.config["width_px"], self.channels * self.config["frame_stack"])
        if self.config["normalize"]:
            return gym.spaces.Box(0.0, 1.0, shape=shape, dtype=np.float32)
        return gym.spaces.Box(0, 255, shape=shape, dtype=np.uint8)

    def _frames(self, race: "RaceView", idx: np.ndarray) -> np.ndarray:
        """(k, H, W, C) frames of cars idx."""
        from control.sim.camera import GRAY_WEIGHTS

        if self._needs_own_render(race):
            st = race.states
            images = self._builtin_views(race, idx, st.x_m[idx], st.y_m[idx], st.yaw_rad[idx])
        else:
            images = race.sim.camera_images(idx)
        if images is None:
            raise ConfigError(f"the {race.config['simulator']} simulator has no camera; use observation type vlidar")
        if images.ndim == 3:
            images = images[..., None]
        if images.shape[-1] == 3 and self.channels == 1:  # backend gave RGB: convert (ITU-R 601 luma)
            images = (images @ GRAY_WEIGHTS).astype(np.uint8)[..., None]
        return images

    def frame_of(self, car: int) -> np.ndarray | None:
        """Car's latest frame as the policy saw it (objects, lens and looks included; one camera of a stereo pair),
        (H, W) gray or (H, W, 3) RGB; None before the car's first observation."""
        cars = getattr(self, "_last_cars", None)
        if cars is None or car not in cars:
            return None
        frame = self._last_frames[int(np.flatnonzero(cars == car)[0])]
        one_camera = 3 if self.config["rgb"] else 1
        frame = frame[..., :one_camera]
        return frame[..., 0] if one_camera == 1 else frame

    def _needs_own_render(self, race: "RaceView") -> bool:
        """Whether frames need the built-in camera's own lenses or objects (else the backend's plain frames, bit for bit)."""
        objects = race.race_objects
        return self.appearance.jitters_pose or (objects is not None and objects.num_objects > 0 and race.config["simulator"] == "builtin")

    def _builtin_views(self, race: "RaceView", idx: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray) -> np.ndarray:
        """Built-in camera frames of cars idx seen from poses (x_m, y_m, yaw_rad) (k,): their lenses, the race's objects painted in."""
        from control.sim.camera import ObjectBoxes

        sim = race.sim
        if not hasattr(sim, "camera") or race.config["simulator"] != "builtin":
            raise ConfigError(f"observation: camera pose jitter and stereo cameras need the builtin simulator, not {race.config['simulator']!r}; "
                              f"set randomize.camera_height_m, camera_pitch_deg and camera_fov_deg to 0 or use type camera")
        if len(self.object_pixels) != race.num_cars:
            self.object_pixels = np.zeros(race.num_cars, dtype=np.int64)
        objects = race.race_objects
        boxes = None
        if objects is not None and objects.num_objects:
            boxes = ObjectBoxes.of_race(objects, objects.config.box_height_m, objects.config.bot_height_m)
        lens = self.appearance.lens_poses(sim.camera_spec, idx) if self.appearance.jitters_pose else None
        spec = sim.camera_spec
        out = np.empty((len(idx), spec.height_px, spec.width_px) + ((3,) if spec.rgb else ()), dtype=np.uint8)
        for track, rows in race.groups_by_track(idx):
            cam = sim.camera(track)
            out[rows] = cam.render_batch(x_m[rows], y_m[rows], yaw_rad[rows], lens=None if lens is None else lens.take(rows),
                                         objects=boxes, rows=idx[rows])
            self.object_pixels[idx[rows]] = cam.last_object_pixels
        return out

    def _looks(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Frames (k, H, W, C) of cars idx in their looks."""
        return self.appearance.apply(frames, idx)

    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> np.ndarray:
        if self.appearance.enabled:  # new looks (and lens poses) for cars starting an episode, before their frames are rendered
            if np.ndim(reset) == 0:
                starting = idx if reset else idx[:0]
            else:
                starting = idx[np.asarray(reset, dtype=bool)[idx]]
            self.appearance.redraw(starting, race.rngs, race.num_cars)
        frames = self._frames(race, idx)
        if self.appearance.enabled:  # this frame in each car's looks
            frames = self._looks(frames, idx)
        self._last_frames, self._last_cars = frames, idx  # a reference, no copy: what render's camera panel shows
        stack, c = int(self.config["frame_stack"]), frames.shape[-1]
        if stack == 1:
            obs = frames
        else:
            if self._stack is None or self._stack.shape[0] != race.num_cars:
                self._stack = np.zeros((race.num_cars, *frames.shape[1:3], c * stack), dtype=np.uint8)
            # reset: True for all of idx, or an (N,) mask of the cars starting a new episode (autoreset).
            fresh = np.full(len(idx), reset, dtype=bool) if np.ndim(reset) == 0 else np.asarray(reset, dtype=bool)[idx]
            if fresh.any():  # a new episode starts with its first frame repeated
                self._stack[idx[fresh]] = np.concatenate([frames[fresh]] * stack, axis=-1)
            if not fresh.all():
                going, rows = idx[~fresh], ~fresh
                self._stack[going, ..., :-c] = self._stack[going, ..., c:]
                self._stack[going, ..., -c:] = frames[rows]
            obs = self._stack[idx]
        if self.config["normalize"]:
            return obs.astype(np.float32) * np.float32(1 / 255)
        return obs


# DeepRacer's stereo pair: two cameras 0.06 m apart (left and right lens joints at y = +-0.03 m, both pitched
# 0.2618 rad = 15 degrees down), aws-deepracer/aws-deepracer deepracer_description/models/xacro/urdf/
# deepracer_stereo_cameras_urdf.xacro (zed_camera_joint_leftcam / zed_camera_joint_rightcam).
STEREO_BASELINE_M = 0.06


class StereoCameraObservation(CameraObservation):
    """DeepRacer's STEREO_CAMERAS: two front cameras baseline_m apart, left and right frames on the channel axis (H, W, 2) gray."""

    class Settings(CameraObservation.Settings):
        """env_config.observation for type stereo_camera (the camera's keys, and the baseline)."""

        baseline_m: PositiveNumber = Field(STEREO_BASELINE_M, description="distance between the two lenses, m (DeepRacer: 0.06)")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.channels = 2 * (3 if self.config["rgb"] else 1)  # left then right; the appearance works on each camera's channels
        self.appearance = CameraAppearance(self.config["randomize"], self.channels // 2)

    def _frames(self, race: "RaceView", idx: np.ndarray) -> np.ndarray:
        """(k, H, W, 2C): the left camera's frame, then the right one's; each a single camera moved half the baseline sideways."""
        st = race.states
        x, y, yaw = st.x_m[idx], st.y_m[idx], st.yaw_rad[idx]
        half_m = 0.5 * float(self.config["baseline_m"])
        left_x, left_y = -np.sin(yaw) * half_m, np.cos(yaw) * half_m  # half the baseline along the car's left axis
        views = []
        pixels = np.zeros(len(idx), dtype=np.int64)
        for sign in (1.0, -1.0):
            frames = self._builtin_views(race, idx, x + sign * left_x, y + sign * left_y, yaw)
            pixels += self.object_pixels[idx]
            views.append(frames if frames.ndim == 4 else frames[..., None])
        self.object_pixels[idx] = pixels
        return np.concatenate(views, axis=-1)

    def _looks(self, frames: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Each camera's frame in the car's looks (the same looks, each camera its own sensor noise)."""
        half = self.channels // 2
        return np.concatenate([self.appearance.apply(frames[..., :half], idx), self.appearance.apply(frames[..., half:], idx)], axis=-1)


class CombinedObservation(ObservationType):
    """A Dict with the camera image (`camera`) and the lidar vector (`vlidar`)."""

    class Settings(Section):
        """env_config.observation for type both."""

        camera: CameraObservation.Settings = Field(default_factory=CameraObservation.Settings, description="the camera's keys (type camera)")
        vlidar: VirtualLidarObservation.Settings = Field(default_factory=VirtualLidarObservation.Settings,
                                                         description="the rays' keys (type vlidar)")

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.camera = CameraObservation({"type": "camera", **self.config["camera"]})
        self.vlidar = VirtualLidarObservation({"type": "vlidar", **self.config["vlidar"]})

    def space(self) -> gym.Space:
        return gym.spaces.Dict({"camera": self.camera.space(), "vlidar": self.vlidar.space()})

    def observe(self, race: "RaceView", idx: np.ndarray, reset: bool | np.ndarray = False) -> dict[str, np.ndarray]:
        return {"camera": self.camera.observe(race, idx, reset), "vlidar": self.vlidar.observe(race, idx, reset)}


OBSERVATION_TYPES: dict[str, type[ObservationType]] = {
    "vlidar": VirtualLidarObservation,
    "camera": CameraObservation,
    "stereo_camera": StereoCameraObservation,
    "both": CombinedObservation,
}


def make_observation_type(config: Mapping[str, Any]) -> ObservationType:
    """The observation type named by config['type']."""
    return pick_type(config, OBSERVATION_TYPES, "observation", "vlidar")(config)


def validate_observation_config(config: Mapping[str, Any]) -> None:
    """Raise ConfigError when the observation config cannot be built."""
    make_observation_type(config)


def camera_settings(observation: ObservationType) -> dict[str, Any] | None:
    """Width, height and colour the simulator's camera must render, or None without a camera."""
    cam = observation.camera if isinstance(observation, CombinedObservation) else observation
    if not isinstance(cam, CameraObservation):
        return None
    return {"width_px": cam.config["width_px"], "height_px": cam.config["height_px"], "rgb": cam.config["rgb"]}
