"""The simulator registry: a backend is one module plus one entry here.

An entry builds the backend for a race of `num_cars` cars and says whether one instance holds
many cars (`batched`) or one car per instance (CARLA: one car per server).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from control.sim.base import BatchedSimulator, VehicleLimits


@dataclass(frozen=True)
class SimulatorRequest:
    """What a backend factory needs to know about the race it serves."""

    env_config: dict[str, Any]  # the validated env_config
    num_cars: int
    camera: dict[str, Any] | None  # width_px, height_px, rgb the observation needs; None without a camera
    first_track: Any  # the track of the first episode (a backend that owns its track may replace it)
    worker_index: int = 0
    vector_index: int = 0
    is_evaluation: bool = False


@dataclass(frozen=True)
class SimulatorEntry:
    """One registered backend."""

    make: Callable[[SimulatorRequest], BatchedSimulator]
    batched: bool  # one instance steps many cars
    limits: Callable[[Mapping[str, Any]], VehicleLimits]  # the car's limits from the env_config, without building the backend


def _make_builtin(request: SimulatorRequest) -> BatchedSimulator:
    """The built-in batched simulator for all the race's cars."""
    from control.sim.builtin import BuiltinBatch

    builtin = dict(request.env_config["builtin"])
    if request.camera is not None:
        builtin["camera"] = {**builtin.get("camera", {}), **request.camera}
    return BuiltinBatch(request.num_cars, builtin)


def _make_carla(request: SimulatorRequest) -> BatchedSimulator:
    """One CARLA server's car as a batch of one."""
    from control.carla.backend import CONTROL_RATE_HZ, CarlaSimulator
    from control.sim.base import SingleCarBatch

    if request.num_cars != 1:
        raise ValueError(f"the carla simulator drives one car per server, got {request.num_cars} cars")
    carla_config = dict(request.env_config["carla"])
    if request.camera is not None:
        # The observation space fixes the image size: the CARLA sensor must render exactly that.
        carla_config["camera"] = {**(carla_config.get("camera") or {}), "width_px": request.camera["width_px"],
                                  "height_px": request.camera["height_px"]}
    backend = CarlaSimulator(carla_config, request.first_track, run_name=request.env_config["run_name"],
                             runner_index=request.worker_index, vector_index=request.vector_index,
                             is_evaluation=request.is_evaluation, control_hz=CONTROL_RATE_HZ)
    return SingleCarBatch(backend)


def _builtin_limits(env_config: Mapping[str, Any]) -> VehicleLimits:
    """The built-in car's limits from env_config.builtin (defaults filled in)."""
    from control.sim.builtin import limits_from_config, resolve_builtin_config

    return limits_from_config(resolve_builtin_config(env_config.get("builtin")))


def _carla_limits(env_config: Mapping[str, Any]) -> VehicleLimits:
    """The CARLA car's limits (the command envelope the backend declares)."""
    from control.carla.backend import CARLA_LIMITS

    return CARLA_LIMITS


SIMULATORS: dict[str, SimulatorEntry] = {
    "builtin": SimulatorEntry(_make_builtin, batched=True, limits=_builtin_limits),
    "carla": SimulatorEntry(_make_carla, batched=False, limits=_carla_limits),
}


def vehicle_limits(env_config: Mapping[str, Any] | None = None) -> VehicleLimits:
    """The VehicleLimits of the car an env_config's simulator declares, without building the backend."""
    env_config = env_config or {}
    name = env_config.get("simulator", "builtin")
    if name not in SIMULATORS:
        from control.errors import ConfigError, did_you_mean

        raise ConfigError(f"env_config.simulator is {name!r}{did_you_mean(str(name), SIMULATORS)}; expected one of {', '.join(SIMULATORS)}")
    return SIMULATORS[name].limits(env_config)
