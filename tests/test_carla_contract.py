"""Contract: every name the fake `carla` offers, and every one the backend touches, exists in the real carla 0.9.16."""
from __future__ import annotations

import inspect

import pytest

from control.carla.backend import CarlaSimulator
from control.carla.config import WEATHER_PRESETS, validate_carla_config
from control.carla.track_from_map import track_from_route
from control.sim.base import Pose, SimulatorError
from tests import fake_carla as fc

carla = pytest.importorskip("carla", reason="the real carla client package is not installed")


def _real(path: str):
    obj = carla
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def names_missing_in_real_carla(log: set[tuple[str, str]]) -> list[str]:
    """The recorded (owner, attribute) look-ups the installed carla package does not have."""
    missing = []
    for owner, attr in sorted(log):
        if owner == "<module>":
            try:
                _real(attr)
            except AttributeError:
                missing.append(attr)
        elif not hasattr(_real(owner), attr):
            missing.append(f"{owner}.{attr}")
    return missing


class _ModuleRecorder:
    """Stands in for the module; records every module-level name looked up through it."""

    def __init__(self, module, log: set, prefix: str = ""):
        self._module, self._log, self._prefix = module, log, prefix

    def __getattr__(self, name: str):
        self._log.add(("<module>", self._prefix + name))
        value = getattr(self._module, name)
        if inspect.ismodule(value):
            return _ModuleRecorder(value, self._log, prefix=f"{self._prefix}{name}.")
        return value


def _fake_public_classes():
    classes = {name: obj for name, obj in vars(fc).items()
               if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == fc.__name__}
    classes.update({f"command.{n}": o for n, o in vars(fc.command).items() if inspect.isclass(o)})
    return classes


def test_every_public_fake_class_and_class_attribute_exists_in_real_carla():
    missing = []
    for path, cls in _fake_public_classes().items():
        try:
            real = _real(path)
        except AttributeError:
            missing.append(path)
            continue
        for klass in cls.__mro__:
            if klass.__module__ != fc.__name__ or klass.__name__.startswith("_") and klass is not cls:
                continue
            for attr in vars(klass):
                if not attr.startswith("_") and not hasattr(real, attr):
                    missing.append(f"{path}.{attr}")
    assert missing == []


def test_every_module_level_fake_name_exists_in_real_carla():
    names = [n for n, v in vars(fc).items() if not n.startswith("_")
             and (inspect.isclass(v) and v.__module__ == fc.__name__ or v is fc.command)]
    assert "command" in names and [n for n in names if not hasattr(carla, n)] == []


def test_weather_presets_offered_by_the_config_exist_in_real_carla():
    assert [w for w in WEATHER_PRESETS if not hasattr(carla.WeatherParameters, w)] == []


def test_everything_the_backend_touches_during_a_session_exists_in_real_carla():
    fc._reset_all()
    log: set = set()
    fc._RECORDING = log
    try:
        module = _ModuleRecorder(fc, log)
        cfg = {"avoid_server_init": True, "timeout_s": 1.0, "traffic": {"enabled": True, "vehicles": 2},
               "retries": {"max_restarts": 2, "backoff_s": 0.0}}
        sim = CarlaSimulator(cfg, None, run_name="contract", runner_index=0, is_evaluation=False, control_hz=15.0,
                             carla_module=module)
        (pos,), (heading,) = sim.load_track().point_at(0.0)
        pose = Pose(float(pos[0]), float(pos[1]), float(heading))
        sim.reset(pose, speed_mps=1.0)
        for _ in range(40):
            sim.step(-0.5, 4.0)  # into the wall: collision and lane-invasion events
        fc._start_server(port=2000)  # the server restarts under us: the recovery path
        with pytest.raises(SimulatorError):
            sim.reset(pose)  # the old connection fails first (the env retries reset once)
        sim.reset(pose)
        sim.step(0.0, 1.0)
        sim.close()
        route = validate_carla_config({"route": {"points": [[30, 0], [0, 30], [-30, 0]]}})["route"]
        track_from_route(fc.Client().get_world().get_map(), route, module)
    finally:
        fc._RECORDING = None
        fc._reset_all()
    assert ("<module>", "Client") in log and ("Vehicle", "apply_control") in log and ("Image", "raw_data") in log
    assert names_missing_in_real_carla(log) == []
