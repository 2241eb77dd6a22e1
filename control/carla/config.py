"""The `carla:` section of env_config: the `CarlaConfig` model (every key with its default and unit) and its validation."""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, Strict, StrictFloat, StrictInt, StrictStr, field_validator, model_validator

from control.config_schema import (
    Expect,
    Flag,
    NonNegativeNumber,
    NonNegativeWhole,
    Number,
    PositiveNumber,
    PositiveWhole,
    Section,
    Text,
    defaults_of,
    one_of,
    parse_section,
)
from control.errors import ConfigError
from control.sim.base import CameraSpec

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

def parse_endpoint(text: str, where: str) -> tuple[str, int]:
    """'host:port' -> (host, port); a malformed endpoint is a ConfigError."""
    if not isinstance(text, str) or text.count(":") != 1:
        raise ConfigError(f"{where}: endpoint {text!r} must look like 'host:port', e.g. '10.0.0.5:2000'")
    host, port_text = text.split(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}: endpoint {text!r} must look like 'host:port' with port 1..65535")
    return host, int(port_text)


def _endpoints(field: str) -> AfterValidator:
    """Each item of list `field` is a 'host:port' endpoint."""
    def check(value: list[str]) -> list[str]:
        for i, text in enumerate(value):
            parse_endpoint(text, f"{WHERE}.{field}[{i}]")
        return value

    return AfterValidator(check)


Port = Annotated[int, Strict(), Field(ge=1, le=65535), Expect("a whole number in 1..65535")]
Seconds = Annotated[PositiveNumber, Expect("a positive number of seconds")]
Point = Annotated[list[StrictFloat], Field(min_length=2, max_length=2), Expect("an (x, y) pair of numbers in metres")]
Pixels = Annotated[int, Strict(), Field(ge=8, le=4096), Expect("8..4096 px")]


class CarlaCameraConfig(Section):
    """env_config.carla.camera: the RGB camera sensor (its keys are CameraSpec's)."""

    enabled: Flag = Field(True, description="spawn the RGB camera sensor")
    width_px: Pixels = Field(160, description="image width, px (a camera observation sets it to its width_px)")
    height_px: Pixels = Field(120, description="image height, px (a camera observation sets it to its height_px)")
    fov_deg: Annotated[Number, Field(ge=1, le=179), Expect("1..179 degrees")] = Field(90.0, description="horizontal field of view, degrees")
    x_offset_m: Number = Field(1.5, description="mount position forward of the vehicle origin, m")
    height_m: Number = Field(1.4, description="mount height above the vehicle origin, m")
    pitch_down_deg: Number = Field(10.0, description="optical axis tilted this far below the horizon, degrees (positive = down, as the builtin's)")


class CarlaTrafficConfig(Section):
    """env_config.carla.traffic: other vehicles."""

    enabled: Flag = Field(False, description="spawn other vehicles driven by the Traffic Manager (synchronous)")
    vehicles: NonNegativeWhole = Field(0, description="number of traffic vehicles")


class CarlaRetriesConfig(Section):
    """env_config.carla.retries: what a dead server gets."""

    max_restarts: NonNegativeWhole = Field(3, description="restarts/reconnects tried per failure before giving up")
    backoff_s: Annotated[NonNegativeNumber, Expect("a number of seconds >= 0")] = Field(2.0, description="first wait between tries, s; doubles each try")


class CarlaRaceActorsConfig(Section):
    """env_config.carla.race_actors: the CARLA blueprints of env_config.race's boxes and bot cars."""

    # Both ids are in CARLA 0.9.x's blueprint library (static.prop.box01..03, creasedbox01..03).
    box_blueprint: Text = Field("static.prop.box01", description="object_avoidance: blueprint id of a box, e.g. static.prop.creasedbox01")
    bot_blueprint: Text = Field("vehicle.audi.tt", description="head_to_bot: blueprint filter of the bot cars (first match)")


class CarlaRouteConfig(Section):
    """env_config.carla.route: the loop built from map waypoints (track_source: route)."""

    points: list[Point] = Field(default_factory=list, description="CARLA world (x, y) points, m, visited in order and closed back to the first")
    start: Annotated[Point | None, Expect("null or an (x, y) pair of numbers in metres")] = Field(
        None, description="(x, y) in CARLA world coordinates, m; null = the map's first spawn point")
    loop: Annotated[Text, one_of(*LOOP_RULES)] = Field("straight", description="at junctions take: straight / left / right (used when points is empty)")
    spacing_m: Annotated[PositiveNumber, Expect("a positive number of metres")] = Field(2.0, description="distance between route waypoints, m")
    max_length_m: Annotated[PositiveNumber, Expect("a positive number of metres")] = Field(
        20000.0, description="give up when the loop has not closed after this length, m")

    @field_validator("points")
    @classmethod
    def _a_loop(cls, value: list[list[float]]) -> list[list[float]]:
        if 0 < len(value) < 3:
            raise ConfigError(f"{WHERE}.route.points needs at least 3 points for a closed loop, got {len(value)}")
        return value


class CarlaConfig(Section):
    """env_config.carla: the server, the world, the car's sensors, the track and the speed controller."""

    # --- where the server is ---
    host: Text = Field("127.0.0.1", description="server address; in launch mode the container runs on this node (host network)")
    port: Port = Field(2000, description="base RPC port (TCP); runner slot k uses port + k * port_stride")
    port_stride: Annotated[int, Strict(), Field(ge=3), Expect("a whole number >= 3 (RPC, streaming, Traffic Manager)")] = Field(
        10, description="ports reserved per server: RPC, streaming = RPC+1, Traffic Manager = RPC+2")
    evaluation_slot_offset: PositiveWhole = Field(50, description="evaluation runner k uses slot offset + k, away from training slots")
    envs_per_runner: PositiveWhole = Field(1, description="servers per env runner (= num_envs_per_env_runner); each sub-env has its own")
    timeout_s: Seconds = Field(20.0, description="client RPC timeout, s: a call slower than this counts as a dead server")
    avoid_server_init: Flag = Field(False, description="true: attach to running servers; false: launch one container per runner")
    endpoints: Annotated[list[StrictStr], _endpoints("endpoints"), Expect("a list of 'host:port' strings")] = Field(
        default_factory=list, description="attach mode: \"host:port\" per training runner (index = runner index, 0 = local)")
    evaluation_endpoints: Annotated[list[StrictStr], _endpoints("evaluation_endpoints"), Expect("a list of 'host:port' strings")] = Field(
        default_factory=list, description="attach mode: \"host:port\" per evaluation runner (index = runner index)")
    # --- launching (Docker) ---
    image: Text = Field("carlasim/carla:0.9.16", description="Docker image of the server")
    quality_level: Annotated[Text, one_of(*QUALITY_LEVELS)] = Field("Low", description="server rendering quality: Low / Epic")
    gpu: Annotated[StrictStr | StrictInt | None, Expect("'all', a device index such as '0', or null")] = Field(
        "all", description="GPU device request: \"all\", a device index such as \"0\", or null for none")
    run_name: Text | None = Field(None, description="label value of this run's containers (default: the run's name)")
    labels: Annotated[dict[StrictStr, StrictStr], Expect("a mapping of strings to strings")] = Field(
        default_factory=dict, description="extra Docker labels on the containers (str -> str)")
    startup_timeout_s: Seconds = Field(120.0, description="s to wait for a fresh server to answer")
    extra_args: Annotated[list[StrictStr], Expect("a list of strings")] = Field(
        default_factory=list, description="extra CarlaUE4.sh arguments, e.g. [\"-benchmark\"]")
    # --- world ---
    map: Text = Field("Town04", description="town name (load_world) or a path to an OpenDRIVE .xodr (standalone map)")
    # CARLA's physics is unreliable above 0.1 s per tick (its documentation's limit).
    fixed_delta_seconds: Annotated[Number | None, Field(gt=0, le=0.1), Expect("null or a number in (0, 0.1] s")] = Field(
        None, description="s per server tick; null = one tick per control period (1/control_hz)")
    no_rendering: Flag = Field(False, description="true turns off server rendering (no camera frames; lidar-only training)")
    weather: Annotated[Text, one_of(*WEATHER_PRESETS)] = Field("ClearNoon", description="a carla.WeatherParameters preset name")
    vehicle_filter: Text = Field("vehicle.tesla.model3", description="blueprint filter of the ego vehicle (first match)")
    spawn_z_m: Number = Field(0.3, description="spawn height above the road, m")
    camera: CarlaCameraConfig = Field(default_factory=CarlaCameraConfig, description="the RGB camera sensor")
    traffic: CarlaTrafficConfig = Field(default_factory=CarlaTrafficConfig, description="other vehicles")
    race_actors: CarlaRaceActorsConfig = Field(default_factory=CarlaRaceActorsConfig,
                                               description="blueprints of env_config.race's boxes and bots")
    retries: CarlaRetriesConfig = Field(default_factory=CarlaRetriesConfig, description="restarts of a dead server")
    # --- the track ---
    track_source: Annotated[Text, one_of(*TRACK_SOURCES)] = Field(
        "route", description="route: built from map waypoints / env: env_config.track placed on the map / file: track_file")
    route: CarlaRouteConfig = Field(default_factory=CarlaRouteConfig, description="the route of track_source: route")
    track_file: Text | None = Field(None, description="DeepRacer .npy placed on the map (its coordinates are in the track frame)")
    track_offset_m: Point = Field([0.0, 0.0], description="track frame origin in right-handed world coordinates (x, -carla_y), m")
    save_track: Text | None = Field(None, description="path to save the route as DeepRacer .npy (for the built-in simulator)")
    # --- speed controller (speed command -> throttle/brake) ---
    speed_kp: Number = Field(0.5, description="throttle per m/s of speed error")
    speed_ki: Number = Field(0.1, description="throttle per m·s⁻¹·s of integrated error")
    max_steer_deg: Annotated[PositiveNumber | None, Expect("null or a positive number of degrees")] = Field(
        None, description="steering at steer=1, degrees; null = read from the vehicle physics")

    @field_validator("gpu")
    @classmethod
    def _device_text(cls, value: str | int | None) -> str | None:
        return None if value is None else str(value)  # Docker's device request takes text

    @model_validator(mode="after")
    def _one_track(self) -> CarlaConfig:
        """track_file and route.points exclude each other; track_source file needs a file."""
        if self.track_file is not None and self.route.points:
            raise ConfigError(f"{WHERE}: give either track_file or route.points, not both")
        if self.track_file is not None and "track_source" not in self.model_fields_set:
            self.track_source = "file"
        if self.track_source == "file" and self.track_file is None:
            raise ConfigError(f"{WHERE}.track_source is 'file' but track_file is not set; give a DeepRacer .npy path")
        return self


DEFAULT_CARLA_CONFIG: dict[str, Any] = defaults_of(CarlaConfig)


def camera_spec(camera: Mapping[str, Any]) -> CameraSpec:
    """The CameraSpec of a validated env_config.carla.camera (RGB frames: CARLA's sensor renders colour)."""
    return CameraSpec(width_px=camera["width_px"], height_px=camera["height_px"], rgb=True, fov_deg=camera["fov_deg"],
                      height_m=camera["height_m"], pitch_down_deg=camera["pitch_down_deg"], x_offset_m=camera["x_offset_m"])


def validate_carla_config(cfg: Mapping[str, Any] | None) -> dict:
    """Merge `cfg` over the defaults and check every key; raises a one-line ConfigError."""
    cfg = {} if cfg is None else cfg
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"{WHERE} must be a mapping of settings, got {cfg!r}")
    # Keys starting with "_" are test-only hooks (e.g. "_fake_module"), never user settings.
    hooks = {k: v for k, v in cfg.items() if isinstance(k, str) and k.startswith("_")}
    out = parse_section(CarlaConfig, {k: v for k, v in cfg.items() if k not in hooks}, WHERE).model_dump()
    return {**out, **copy.deepcopy(hooks)}


def rllib_fault_tolerance_settings() -> dict[str, Any]:
    """AlgorithmConfig.fault_tolerance(...) kwargs: RLlib restarts a failed env runner (second line of defence)."""
    return {
        "restart_failed_env_runners": True,
        "max_num_env_runner_restarts": 100,
        "delay_between_env_runner_restarts_s": 10.0,
    }
