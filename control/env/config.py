"""The env's configuration: the `EnvConfig` model (every key with its default, unit and check) and its validation.

`observation` and `action` are replaced, not merged, by a config that gives them: their keys depend
on `type`, and each type's own model (control/env/observations.py, actions.py) checks them.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StrictFloat, model_validator

from control.config_schema import (
    Expect,
    Flag,
    NonNegativeNumber,
    NonNegativeWhole,
    PositiveWhole,
    Section,
    Text,
    Whole,
    defaults_of,
    one_of,
    parse_section,
)
from control.errors import ConfigError
from control.sim.objects import RaceConfig
from control.sim.registry import SIMULATORS
from control.track.generate import (
    DEFAULT_LENGTH_RANGE_M,
    DEFAULT_WIDTH_RANGE_M,
    MAX_LENGTH_M,
    MAX_WIDTH_M,
    MIN_LENGTH_M,
    MIN_WIDTH_M,
)

START_MODES = ("fixed", "random", "round_robin")
DIRECTIONS = ("counter_clockwise", "clockwise", "random")
INFO_MODES = ("auto", "full", "lean")


def _range(value: list[float], low_m: float, high_m: float) -> list[float]:
    """[low, high] within [low_m, high_m]; else a ValueError saying what is right."""
    if len(value) != 2 or not low_m <= value[0] <= value[1] <= high_m:
        raise ValueError(f"[low, high] with {low_m:g} <= low <= high <= {high_m:g} m")
    return value


def _length_range(value: list[float]) -> list[float]:
    return _range(value, MIN_LENGTH_M, MAX_LENGTH_M)


def _width_range(value: list[float]) -> list[float]:
    return _range(value, MIN_WIDTH_M, MAX_WIDTH_M)


def _check_tracks(spec: str | list[str]) -> str | list[str]:
    """Raise TrackFileError now (not inside an env runner) for a track name or file that does not load."""
    from control.errors import TrackFileError
    from control.track.track import Track

    if isinstance(spec, list) and not spec:
        raise ValueError("a track name, a .npy path, a non-empty list of those, or 'procedural'")
    if isinstance(spec, list) and "procedural" in spec:
        raise ConfigError(f"env_config.track {spec!r} lists 'procedural'; give track: procedural alone, or a list of track names/.npy paths")
    for name in spec if isinstance(spec, list) else [spec]:
        if name != "procedural":
            try:
                Track.load(name)
            except TrackFileError as exc:
                raise TrackFileError(f"env_config.track: {exc}") from None
    return spec


def _check_observation(section: dict[str, Any]) -> dict[str, Any]:
    from control.env.observations import validate_observation_config

    validate_observation_config(section)
    return section


def _check_action(section: dict[str, Any]) -> dict[str, Any]:
    from control.env.actions import make_action_type

    make_action_type(section)
    return section


def _check_reward(name: str) -> str:
    from control.env.rewards import load_reward_function

    load_reward_function(name)
    return name


def _check_builtin(section: dict[str, Any]) -> dict[str, Any]:
    from control.sim.builtin import resolve_builtin_config

    resolve_builtin_config(section)
    return section


class ProceduralConfig(Section):
    """env_config.procedural: the generated tracks of `track: procedural`."""

    length_m: Annotated[list[StrictFloat], AfterValidator(_length_range), Expect("[low, high] in metres")] = Field(
        list(DEFAULT_LENGTH_RANGE_M), description="generated track length range [low, high], m")
    width_m: Annotated[list[StrictFloat], AfterValidator(_width_range), Expect("[low, high] in metres")] = Field(
        list(DEFAULT_WIDTH_RANGE_M), description="generated track width range [low, high], m")
    pool_size: Annotated[NonNegativeWhole, Expect("a whole number >= 0 (0: a new track every episode)")] = Field(
        0, description="> 0: draw from this many fixed seeds (cheaper resets, cached per process); 0: a fresh track every episode")


class StartConfig(Section):
    """env_config.start: where and which way an episode starts."""

    mode: Annotated[Text, one_of(*START_MODES)] = Field(
        "random", description="where along the lap an episode starts: fixed (at `waypoint`), random, or round_robin (advances each episode)")
    waypoint: NonNegativeWhole = Field(0, description="fixed mode: start waypoint index")
    round_robin_waypoints: NonNegativeWhole = Field(10, description="round_robin: waypoints the start advances each episode")
    direction: Annotated[Text, one_of(*DIRECTIONS)] = Field(
        "counter_clockwise", description="counter_clockwise (waypoint order), clockwise or random")
    lateral_noise_m: NonNegativeNumber = Field(0.0, description="uniform random offset from the centerline at the start, m")
    heading_noise_deg: NonNegativeNumber = Field(0.0, description="uniform random heading offset at the start, degrees")


class TerminationConfig(Section):
    """env_config.termination: what ends an episode besides the step limit."""

    off_track: Flag = Field(True, description="end the episode when no wheel is on the track (DeepRacer)")
    immobilized_steps: PositiveWhole = Field(30, description="end when the car moved < immobilized_distance_m over this many steps")
    immobilized_distance_m: NonNegativeNumber = Field(0.05, description="see immobilized_steps, m")
    reversed: Flag = Field(True, description="end when the car drives the wrong way for reversed_steps steps")
    reversed_steps: PositiveWhole = Field(15, description="see reversed, steps")
    laps: PositiveWhole = Field(1, description="laps to complete before the episode ends (progress is per lap)")


class EnvConfig(Section):
    """env_config: the environment's settings (every key is also a gym.make keyword)."""

    simulator: Annotated[Text, one_of(*SIMULATORS)] = Field(
        "builtin", description="`builtin` (numpy, no server) or `carla` (a CARLA server)")
    track: Annotated[str | list[str], AfterValidator(_check_tracks), Expect(
        "a track name, a .npy path, a non-empty list of those, or 'procedural'")] = Field(
        "oval", description="a bundled name (oval, hairpins, speedway), a DeepRacer `.npy` path, a list of those "
                            "(one per episode), or `procedural` (a new generated track every episode)")
    procedural: ProceduralConfig = Field(default_factory=ProceduralConfig, description="generated tracks (`track: procedural`)")
    max_episode_steps: PositiveWhole = Field(1000, description="truncation limit, steps (at 15 Hz: 66 s)")
    observation: Annotated[dict[str, Any], AfterValidator(_check_observation)] = Field(
        default_factory=lambda: {"type": "vlidar"}, description="observation type and its keys (see below)")
    action: Annotated[dict[str, Any], AfterValidator(_check_action)] = Field(
        default_factory=lambda: {"type": "continuous"}, description="action type and its keys (see below)")
    reward: Annotated[Text, AfterValidator(_check_reward)] = Field(
        "follow_center_line", description="a built-in reward name or a path to a `.py` file defining `reward_function(params)`")
    start: StartConfig = Field(default_factory=StartConfig, description="start point and direction")
    termination: TerminationConfig = Field(default_factory=TerminationConfig, description="what ends an episode")
    race: RaceConfig = Field(default_factory=RaceConfig, description="race type and its objects: time_trial, object_avoidance (boxes), head_to_bot (bot cars)")
    builtin: Annotated[dict[str, Any], AfterValidator(_check_builtin)] = Field(
        default_factory=dict, description="built-in simulator settings (see [The built-in simulator](#the-built-in-simulator))")
    carla: dict[str, Any] = Field(default_factory=dict, description="CARLA settings (see [CARLA](#carla-backend))")
    seed: Whole | None = Field(None, description="base seed; each env runner and vector copy adds its index")
    infos: Annotated[Text, one_of(*INFO_MODES)] = Field(
        "auto", description="step infos: `full` (every step: params, vehicle, commands, reward components), `lean` (only lap "
                            "times and each episode's last step: params, status, laps, mean speed) or `auto` (`ppo_train.py`: "
                            "lean unless `--state_log`; elsewhere full)")
    run_name: Text = Field("default", description="set by `ppo_train.py`; names CARLA containers and state-log files")

    @model_validator(mode="after")
    def _fits_the_car(self) -> EnvConfig:
        """Discrete actions within the car's limits (the backend's); CARLA settings checked when CARLA is used."""
        from control.env.actions import make_action_type
        from control.sim.registry import vehicle_limits

        make_action_type(self.action, vehicle_limits({"simulator": self.simulator, "builtin": self.builtin}))
        carla = None
        if self.simulator == "carla" or self.carla:
            from control.carla.config import validate_carla_config

            carla = validate_carla_config(self.carla)
        if self.race.type != "time_trial":
            # Objects live on one driving track (issue 12): one track, one direction. On CARLA the track is the
            # backend's (a map route or track_file: one track) unless track_source is env, which places env_config.track.
            uses_env_track = self.simulator == "builtin" or (carla is not None and carla["track_source"] == "env")
            one_track = not uses_env_track or (isinstance(self.track, str) and self.track != "procedural")
            if not one_track or self.start.direction == "random":
                raise ConfigError(f"env_config.race.type {self.race.type!r} needs the builtin simulator, one track name or file "
                                  f"(or simulator carla with its route, track_file or one env track) and start.direction "
                                  f"counter_clockwise or clockwise; got track {self.track!r}, direction {self.start.direction!r}")
        if self.simulator == "carla":
            kind = self.observation.get("type")
            if kind in ("camera", "both") and (not carla["camera"]["enabled"] or carla["no_rendering"]):
                raise ConfigError(f"env_config.observation.type {kind!r} needs CARLA camera frames, but "
                                  "env_config.carla has camera.enabled: false or no_rendering: true; enable the camera "
                                  "with rendering on, or use observation type vlidar")
            _check_carla_cameras(self.observation)
        return self


def _check_carla_cameras(observation: dict[str, Any]) -> None:
    """Raise a one-line ConfigError for camera observations only the builtin simulator renders (stereo, pose jitter)."""
    from control.env.observations import ObservationType, StereoCameraObservation, make_observation_type

    top = make_observation_type(observation)
    parts = [top] + [v for v in vars(top).values() if isinstance(v, ObservationType)]  # a combination's own sensors
    for part in parts:
        appearance = getattr(part, "appearance", None)
        if isinstance(part, StereoCameraObservation):
            raise ConfigError(f"env_config.observation.type {observation.get('type')!r}: the CARLA backend renders one front "
                              f"camera, not a stereo pair; use simulator builtin, or observation type camera")
        if appearance is not None and appearance.jitters_pose:
            raise ConfigError(f"env_config.observation.type {observation.get('type')!r}: camera pose jitter (randomize.camera_height_m, "
                              f"camera_pitch_deg, camera_fov_deg) needs the builtin simulator; set them to 0 for simulator carla")


DEFAULT_ENV_CONFIG: dict[str, Any] = defaults_of(EnvConfig)


def merge_dicts(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` updated recursively with `override`."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate_env_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with `config`; unknown keys and bad values raise a one-line ConfigError naming them."""
    return parse_section(EnvConfig, config, "env_config").model_dump()
