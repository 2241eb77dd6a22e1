"""The `carla:` section of env_config: defaults (every key with its unit) and validation."""
from __future__ import annotations

import copy
import numbers
from typing import Any

from control.errors import ConfigError, did_you_mean, unknown_key_error

WHERE = "env_config.carla"

# Presets of carla.WeatherParameters in 0.9.16 (the contract test checks them against the real module).
WEATHER_PRESETS = (
    "Default", "ClearNoon", "CloudyNoon", "WetNoon", "WetCloudyNoon", "SoftRainNoon", "MidRainyNoon",
    "HardRainNoon", "ClearSunset", "CloudySunset", "WetSunset", "WetCloudySunset", "SoftRainSunset",
    "MidRainSunset", "HardRainSunset", "ClearNight", "CloudyNight", "WetNight", "WetCloudyNight",
    "SoftRainNight", "MidRainyNight", "HardRainNight", "DustStorm",
)
QUALITY_LEVELS = ("Low", "Epic")
LOOP_RULES = ("straight", "left", "right")
TRACK_SOURCES = ("route", "env", "file")

DEFAULT_CARLA_CONFIG: dict[str, Any] = {
    # --- where the server is ---
    "host": "127.0.0.1",  # server address; in launch mode the container runs on this node (host network)
    "port": 2000,  # base RPC port (TCP); runner slot k uses port + k * port_stride
    "port_stride": 10,  # ports reserved per server: RPC, streaming = RPC+1, Traffic Manager = RPC+2
    "evaluation_slot_offset": 50,  # evaluation runner k uses slot offset + k, away from training slots
    "envs_per_runner": 1,  # servers per env runner (= num_envs_per_env_runner); each sub-env has its own
    "timeout_s": 20.0,  # client RPC timeout, s: a call slower than this counts as a dead server
    "avoid_server_init": False,  # True: attach to running servers; False: launch one container per runner
    "endpoints": [],  # attach mode: "host:port" per training runner (index = runner index, 0 = local)
    "evaluation_endpoints": [],  # attach mode: "host:port" per evaluation runner (index = runner index)
    # --- launching (Docker) ---
    "image": "carlasim/carla:0.9.16",  # Docker image of the server
    "quality_level": "Low",  # server rendering quality: Low | Epic
    "gpu": "all",  # GPU device request: "all", a device index such as "0", or null for none
    "run_name": None,  # label value of this run's containers (default: the run's name)
    "labels": {},  # extra Docker labels on the containers (str -> str)
    "startup_timeout_s": 120.0,  # s to wait for a fresh server to answer
    "extra_args": [],  # extra CarlaUE4.sh arguments, e.g. ["-benchmark"]
    # --- world ---
    "map": "Town04",  # town name (load_world) or a path to an OpenDRIVE .xodr (standalone map)
    "fixed_delta_seconds": None,  # s per server tick; null = one tick per control period (1/control_hz)
    "no_rendering": False,  # True turns off server rendering (no camera frames; lidar-only training)
    "weather": "ClearNoon",  # a carla.WeatherParameters preset name
    "vehicle_filter": "vehicle.tesla.model3",  # blueprint filter of the ego vehicle (first match)
    "spawn_z_m": 0.3,  # spawn height above the road, m
    "camera": {
        "enabled": True,  # spawn the RGB camera sensor
        "width": 160,  # image width, px (a camera observation sets it to its width_px)
        "height": 120,  # image height, px (a camera observation sets it to its height_px)
        "fov_deg": 90.0,  # horizontal field of view, degrees
        "x_m": 1.5,  # mount position forward of the vehicle origin, m
        "z_m": 1.4,  # mount height above the vehicle origin, m
        "pitch_deg": -10.0,  # mount pitch, degrees (negative looks down)
    },
    "traffic": {
        "enabled": False,  # spawn other vehicles driven by the Traffic Manager (synchronous)
        "vehicles": 0,  # number of traffic vehicles
    },
    "retries": {
        "max_restarts": 3,  # restarts/reconnects tried per failure before giving up
        "backoff_s": 2.0,  # first wait between tries, s; doubles each try
    },
    # --- the track ---
    "track_source": "route",  # route: built from map waypoints | env: env_config.track placed on the map | file: track_file
    "route": {
        "points": [],  # CARLA world (x, y) points, m, visited in order and closed back to the first
        "start": None,  # (x, y) in CARLA world coordinates, m; null = the map's first spawn point
        "loop": "straight",  # at junctions take: straight | left | right (used when points is empty)
        "spacing_m": 2.0,  # distance between route waypoints, m
        "max_length_m": 20000.0,  # give up when the loop has not closed after this length, m
    },
    "track_file": None,  # DeepRacer .npy placed on the map (its coordinates are in the track frame)
    "track_offset_m": [0.0, 0.0],  # track frame origin in right-handed world coordinates (x, -carla_y), m
    "save_track": None,  # path to save the route as DeepRacer .npy (for the built-in simulator)
    # --- speed controller (speed command -> throttle/brake) ---
    "speed_kp": 0.5,  # throttle per m/s of speed error
    "speed_ki": 0.1,  # throttle per m·s^-1·s of integrated error
    "max_steer_deg": None,  # steering at steer=1, degrees; null = read from the vehicle physics
}

_SECTIONS = ("camera", "traffic", "retries", "route")


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_type(where: str, value: Any, expected: str) -> None:
    checks = {
        "number": _is_number,
        "int": lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool),
        "bool": lambda v: isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "list": lambda v: isinstance(v, (list, tuple)),
        "dict": lambda v: isinstance(v, dict),
    }
    if not checks[expected](value):
        raise ConfigError(f"{where} must be a {expected}, got {value!r}")


def _merge_section(name: str, given: Any) -> dict:
    where = f"{WHERE}.{name}"
    if given is None:
        given = {}
    _check_type(where, given, "dict")
    defaults = DEFAULT_CARLA_CONFIG[name]
    for key in given:
        if key not in defaults:
            raise unknown_key_error(key, defaults, where)
    return {**copy.deepcopy(defaults), **given}


def parse_endpoint(text: str, where: str) -> tuple[str, int]:
    """'host:port' -> (host, port); a malformed endpoint is a ConfigError."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ConfigError(f"{where}: endpoint {text!r} must look like 'host:port', e.g. '10.0.0.5:2000'")
    host, port_text = text.split(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: endpoint {text!r} must look like 'host:port' with port 1..65535")
    return host, int(port_text)


def _check_point(value: Any, where: str) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(v) for v in value)):
        raise ConfigError(f"{where} must be an (x, y) pair of numbers in metres, got {value!r}")


def validate_carla_config(cfg: dict | None) -> dict:
    """Merge `cfg` over DEFAULT_CARLA_CONFIG and check every key; raises a one-line ConfigError."""
    cfg = {} if cfg is None else cfg
    _check_type(WHERE, cfg, "dict")
    for key in cfg:
        # Keys starting with "_" are test-only hooks (e.g. "_fake_module"), never user settings.
        if key not in DEFAULT_CARLA_CONFIG and not key.startswith("_"):
            raise unknown_key_error(key, DEFAULT_CARLA_CONFIG, WHERE)
    out = {**copy.deepcopy(DEFAULT_CARLA_CONFIG), **copy.deepcopy(cfg)}
    for name in _SECTIONS:
        out[name] = _merge_section(name, cfg.get(name))

    types = {
        "host": "str", "port": "int", "port_stride": "int", "evaluation_slot_offset": "int",
        "envs_per_runner": "int", "timeout_s": "number", "avoid_server_init": "bool", "endpoints": "list",
        "evaluation_endpoints": "list", "image": "str", "quality_level": "str", "labels": "dict",
        "startup_timeout_s": "number", "extra_args": "list", "map": "str", "no_rendering": "bool",
        "vehicle_filter": "str", "spawn_z_m": "number", "track_offset_m": "list", "track_source": "str",
        "speed_kp": "number", "speed_ki": "number",
    }
    for key, expected in types.items():
        _check_type(f"{WHERE}.{key}", out[key], expected)
    for key in ("timeout_s", "startup_timeout_s"):
        if out[key] <= 0:
            raise ConfigError(f"{WHERE}.{key} must be > 0 seconds, got {out[key]}")
    if not 0 < out["port"] < 65536:
        raise ConfigError(f"{WHERE}.port must be 1..65535, got {out['port']}")
    if out["port_stride"] < 3:
        raise ConfigError(f"{WHERE}.port_stride must be >= 3 (RPC, streaming, Traffic Manager), got {out['port_stride']}")
    if out["envs_per_runner"] < 1:
        raise ConfigError(f"{WHERE}.envs_per_runner must be >= 1, got {out['envs_per_runner']}")
    if out["evaluation_slot_offset"] < 1:
        raise ConfigError(f"{WHERE}.evaluation_slot_offset must be >= 1, got {out['evaluation_slot_offset']}")
    for key in ("endpoints", "evaluation_endpoints"):
        out[key] = list(out[key])
        for i, text in enumerate(out[key]):
            parse_endpoint(text, f"{WHERE}.{key}[{i}]")
    if out["quality_level"] not in QUALITY_LEVELS:
        raise ConfigError(
            f"{WHERE}.quality_level must be one of {', '.join(QUALITY_LEVELS)}, got {out['quality_level']!r}"
            + did_you_mean(out["quality_level"], QUALITY_LEVELS))
    if isinstance(out["gpu"], bool) or out["gpu"] is not None and not isinstance(out["gpu"], (str, int)):
        raise ConfigError(f"{WHERE}.gpu must be 'all', a device index such as '0', or null, got {out['gpu']!r}")
    if out["gpu"] is not None:
        out["gpu"] = str(out["gpu"])
    if out["run_name"] is not None:
        _check_type(f"{WHERE}.run_name", out["run_name"], "str")
    for k, v in out["labels"].items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ConfigError(f"{WHERE}.labels must map strings to strings, got {k!r}: {v!r}")
    if not all(isinstance(a, str) for a in out["extra_args"]):
        raise ConfigError(f"{WHERE}.extra_args must be a list of strings, got {out['extra_args']!r}")
    fdt = out["fixed_delta_seconds"]
    if fdt is not None and (not _is_number(fdt) or not 0 < fdt <= 0.1):
        # CARLA's physics is unreliable above 0.1 s per tick (its documentation's limit).
        raise ConfigError(f"{WHERE}.fixed_delta_seconds must be null or a number in (0, 0.1] s, got {fdt!r}")
    weather = out["weather"]
    if weather not in WEATHER_PRESETS:
        raise ConfigError(f"{WHERE}.weather must be a carla.WeatherParameters preset, got {weather!r}"
                          + (did_you_mean(weather, WEATHER_PRESETS) or f"; e.g. {', '.join(WEATHER_PRESETS[:4])}"))
    if out["max_steer_deg"] is not None and (not _is_number(out["max_steer_deg"]) or out["max_steer_deg"] <= 0):
        raise ConfigError(f"{WHERE}.max_steer_deg must be null or a positive number of degrees")
    _check_point(out["track_offset_m"], f"{WHERE}.track_offset_m")
    for key in ("track_file", "save_track"):
        if out[key] is not None:
            _check_type(f"{WHERE}.{key}", out[key], "str")

    cam = out["camera"]
    _check_type(f"{WHERE}.camera.enabled", cam["enabled"], "bool")
    for key in ("width", "height"):
        _check_type(f"{WHERE}.camera.{key}", cam[key], "int")
        if not 8 <= cam[key] <= 4096:
            raise ConfigError(f"{WHERE}.camera.{key} must be 8..4096 px, got {cam[key]}")
    for key in ("fov_deg", "x_m", "z_m", "pitch_deg"):
        _check_type(f"{WHERE}.camera.{key}", cam[key], "number")
    if not 1 <= cam["fov_deg"] <= 179:
        raise ConfigError(f"{WHERE}.camera.fov_deg must be 1..179 degrees, got {cam['fov_deg']}")

    traffic = out["traffic"]
    _check_type(f"{WHERE}.traffic.enabled", traffic["enabled"], "bool")
    _check_type(f"{WHERE}.traffic.vehicles", traffic["vehicles"], "int")
    if traffic["vehicles"] < 0:
        raise ConfigError(f"{WHERE}.traffic.vehicles must be >= 0, got {traffic['vehicles']}")

    retries = out["retries"]
    _check_type(f"{WHERE}.retries.max_restarts", retries["max_restarts"], "int")
    _check_type(f"{WHERE}.retries.backoff_s", retries["backoff_s"], "number")
    if retries["max_restarts"] < 0 or retries["backoff_s"] < 0:
        raise ConfigError(f"{WHERE}.retries: max_restarts and backoff_s must be >= 0, got {retries}")

    route = out["route"]
    _check_type(f"{WHERE}.route.points", route["points"], "list")
    route["points"] = [list(p) for p in route["points"]]
    for i, point in enumerate(route["points"]):
        _check_point(point, f"{WHERE}.route.points[{i}]")
    if 0 < len(route["points"]) < 3:
        raise ConfigError(f"{WHERE}.route.points needs at least 3 points for a closed loop, got {len(route['points'])}")
    if route["start"] is not None:
        _check_point(route["start"], f"{WHERE}.route.start")
    if route["loop"] not in LOOP_RULES:
        raise ConfigError(f"{WHERE}.route.loop must be one of {', '.join(LOOP_RULES)}, got {route['loop']!r}"
                          + did_you_mean(route["loop"], LOOP_RULES))
    for key in ("spacing_m", "max_length_m"):
        _check_type(f"{WHERE}.route.{key}", route[key], "number")
        if route[key] <= 0:
            raise ConfigError(f"{WHERE}.route.{key} must be > 0 m, got {route[key]}")
    if out["track_file"] is not None and route["points"]:
        raise ConfigError(f"{WHERE}: give either track_file or route.points, not both")
    if out["track_file"] is not None and "track_source" not in cfg:
        out["track_source"] = "file"
    if out["track_source"] not in TRACK_SOURCES:
        raise ConfigError(f"{WHERE}.track_source must be one of {', '.join(TRACK_SOURCES)}, got {out['track_source']!r}"
                          + did_you_mean(out["track_source"], TRACK_SOURCES))
    if out["track_source"] == "file" and out["track_file"] is None:
        raise ConfigError(f"{WHERE}.track_source is 'file' but track_file is not set; give a DeepRacer .npy path")
    return out


def rllib_fault_tolerance_settings() -> dict[str, Any]:
    """AlgorithmConfig.fault_tolerance(...) kwargs: RLlib restarts a failed env runner (second line of defence)."""
    return {
        "restart_failed_env_runners": True,
        "max_num_env_runner_restarts": 100,
        "delay_between_env_runner_restarts_s": 10.0,
    }
