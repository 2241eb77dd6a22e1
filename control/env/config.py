"""The env's configuration: one defaults dict, every key commented, and its validation."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from control.errors import ConfigError, unknown_key_error
from control.sim.registry import SIMULATORS

DEFAULT_ENV_CONFIG: dict[str, Any] = {
    "simulator": "builtin",  # builtin (numpy, no server) | carla (a CARLA server)
    # A bundled track name (oval, hairpins, speedway), a path to a DeepRacer .npy, a list of
    # those (one picked per episode), or "procedural" (a new generated track every episode).
    "track": "oval",
    "procedural": {  # used when track == "procedural"
        "length_m": [20.0, 60.0],  # generated track length range, m
        "width_m": [0.76, 1.07],  # generated track width range, m
        "pool_size": 0,  # >0: draw from this many fixed seeds (cheaper resets); 0: a fresh track every episode
    },
    "max_episode_steps": 1000,  # truncation limit, steps (at 15 Hz: 66 s)
    "observation": {"type": "vlidar"},  # see control/env/observations.py for each type's keys
    "action": {"type": "continuous"},  # see control/env/actions.py for each type's keys
    # A built-in reward name (see control/env/rewards.py) or a path to a .py file defining
    # DeepRacer's reward_function(params).
    "reward": "follow_center_line",
    "start": {
        "mode": "random",  # fixed | random | round_robin: where along the lap an episode starts
        "waypoint": 0,  # fixed mode: start waypoint index
        "round_robin_waypoints": 10,  # round_robin: waypoints the start advances each episode
        "direction": "counter_clockwise",  # counter_clockwise (waypoint order) | clockwise | random
        "lateral_noise_m": 0.0,  # uniform random offset from the centerline at the start, m
        "heading_noise_deg": 0.0,  # uniform random heading offset at the start, degrees
    },
    "termination": {
        "off_track": True,  # end the episode when no wheel is on the track (DeepRacer)
        "immobilized_steps": 30,  # end when the car moved < immobilized_distance_m over this many steps
        "immobilized_distance_m": 0.05,  # see immobilized_steps, m
        "reversed": True,  # end when the car drives the wrong way for reversed_steps steps
        "reversed_steps": 15,  # see reversed
        "laps": 1,  # laps to complete before the episode ends (progress is per lap)
    },
    "builtin": {},  # built-in simulator settings (control/sim/builtin.py DEFAULT_BUILTIN_CONFIG)
    "carla": {},  # CARLA settings (control/carla/config.py DEFAULT_CARLA_CONFIG)
    "seed": None,  # base seed; each env runner / vector copy adds its index
    "run_name": "default",  # names CARLA containers and state-log files; set by ppo_train.py
}

_SECTIONS_WITH_FIXED_KEYS = ("procedural", "start", "termination")
START_MODES = ("fixed", "random", "round_robin")
DIRECTIONS = ("counter_clockwise", "clockwise", "random")


def merge_dicts(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` updated recursively with `override`."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _choice(value: Any, valid: tuple[str, ...], where: str) -> None:
    """Raise unless value is one of valid."""
    if value not in valid:
        from control.errors import did_you_mean

        raise ConfigError(f"{where} is {value!r}{did_you_mean(str(value), valid)}; expected one of {', '.join(valid)}")


def _check_tracks(spec: str | list) -> None:
    """Raise TrackFileError now (not inside an env runner) for a track name or file that does not load."""
    from control.errors import TrackFileError
    from control.track.track import Track

    if isinstance(spec, list) and "procedural" in spec:
        raise ConfigError(f"env_config.track {spec!r} lists 'procedural'; give track: procedural alone, or a list of track names/.npy paths")
    for name in spec if isinstance(spec, list) else [spec]:
        if name != "procedural":
            try:
                Track.load(name)
            except TrackFileError as exc:
                raise TrackFileError(f"env_config.track: {exc}") from None


def _check_procedural(section: Mapping[str, Any]) -> None:
    """Raise ConfigError now for ranges no generated track can meet (else every env runner fails at reset)."""
    from control.track.generate import MAX_LENGTH_M, MAX_WIDTH_M, MIN_LENGTH_M, MIN_WIDTH_M

    for key, (lo_m, hi_m) in (("length_m", (MIN_LENGTH_M, MAX_LENGTH_M)), ("width_m", (MIN_WIDTH_M, MAX_WIDTH_M))):
        value = section[key]
        ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        if not ok or not lo_m <= value[0] <= value[1] <= hi_m:
            raise ConfigError(f"env_config.procedural.{key} is {value!r}; expected [low, high] with "
                              f"{lo_m:g} <= low <= high <= {hi_m:g} m")
    pool = section["pool_size"]
    if isinstance(pool, bool) or not isinstance(pool, int) or pool < 0:
        raise ConfigError(f"env_config.procedural.pool_size is {pool!r}; expected a whole number >= 0 (0: a new track every episode)")


def validate_env_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults merged with `config`; unknown keys and bad values raise ConfigError naming them."""
    config = dict(config or {})
    for key in config:
        if key not in DEFAULT_ENV_CONFIG:
            raise unknown_key_error(key, DEFAULT_ENV_CONFIG, "env_config")
    for section in _SECTIONS_WITH_FIXED_KEYS:
        given = config.get(section) or {}
        if not isinstance(given, Mapping):
            raise ConfigError(f"env_config.{section} must be a mapping, got {given!r}")
        for key in given:
            if key not in DEFAULT_ENV_CONFIG[section]:
                raise unknown_key_error(key, DEFAULT_ENV_CONFIG[section], f"env_config.{section}")
    cfg = merge_dicts(DEFAULT_ENV_CONFIG, config)
    # Observation and action sections are replaced, not merged: their keys depend on `type`.
    for section in ("observation", "action"):
        if section in config:
            cfg[section] = copy.deepcopy(dict(config[section]))
    _choice(cfg["simulator"], tuple(SIMULATORS), "env_config.simulator")
    _choice(cfg["start"]["mode"], START_MODES, "env_config.start.mode")
    _choice(cfg["start"]["direction"], DIRECTIONS, "env_config.start.direction")
    steps = cfg["max_episode_steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ConfigError(f"env_config.max_episode_steps must be a positive integer, got {steps!r}")
    if not isinstance(cfg["track"], (str, list)) or (isinstance(cfg["track"], list) and not cfg["track"]):
        raise ConfigError(f"env_config.track must be a track name, a .npy path, a non-empty list of those, or 'procedural'; got {cfg['track']!r}")
    _check_tracks(cfg["track"])
    _check_procedural(cfg["procedural"])
    # Sub-configs validate themselves; importing here keeps this module light.
    from control.env.actions import make_action_type
    from control.env.observations import validate_observation_config
    from control.env.rewards import load_reward_function

    validate_observation_config(cfg["observation"])
    make_action_type(cfg["action"])
    load_reward_function(cfg["reward"])
    from control.sim.builtin import resolve_builtin_config

    resolve_builtin_config(cfg["builtin"])
    if cfg["simulator"] == "carla" or cfg["carla"]:
        from control.carla.config import validate_carla_config

        carla = validate_carla_config(cfg["carla"])
        if cfg["simulator"] == "carla" and cfg["observation"].get("type") in ("camera", "both") and (
                not carla["camera"]["enabled"] or carla["no_rendering"]):
            raise ConfigError(f"env_config.observation.type {cfg['observation']['type']!r} needs CARLA camera frames, but "
                              "env_config.carla has camera.enabled: false or no_rendering: true; enable the camera "
                              "with rendering on, or use observation type vlidar")
    return cfg
