"""Action types: how a policy's action becomes a steering angle (degrees) and a target speed (m/s)."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Annotated, Any

import gymnasium as gym
import numpy as np
from pydantic import Field, StrictFloat, field_validator

from control.config_schema import Expect, NonNegativeWhole, Number, Section
from control.env.typed_section import parse_typed_section, pick_type
from control.errors import ConfigError
from control.sim.base import DEEPRACER_LIMITS, VehicleLimits

_MAX_STEER_DEG, _MAX_SPEED_MPS = DEEPRACER_LIMITS.max_steering_deg, DEEPRACER_LIMITS.max_speed_mps
# DeepRacer's default discrete action space (model_metadata.json form): 5 steering angles
# x 2 speeds, as the console creates it (full lock and half lock each way, granularity 5; 2 speed levels).
DEEPRACER_DEFAULT_ACTIONS: list[dict[str, float]] = [
    {"steering_angle": s * _MAX_STEER_DEG, "speed": v} for s in (-1.0, -0.5, 0.0, 0.5, 1.0) for v in (0.5, 1.0)
]


def _low_high(value: list[float]) -> list[float]:
    if len(value) != 2 or not value[0] < value[1]:
        raise ValueError("[low, high] with low < high")
    return value


LowHigh = Annotated[list[StrictFloat], Expect("[low, high] with low < high")]


class DiscreteActionEntry(Section):
    """One action of a discrete list: DeepRacer's model_metadata.json form."""

    steering_angle: Number = Field(description="steering angle, degrees (negative = right)")
    speed: Number = Field(description="target speed, m/s")
    index: NonNegativeWhole | None = Field(None, description="DeepRacer's action index (ignored: the list order counts)")


class ActionType(abc.ABC):
    """Maps the policy's action space to (steering_deg, speed_mps) commands."""

    Settings: type[Section] = Section  # the type's keys: defaults, units, checks

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = parse_typed_section(config, self.Settings, "action")

    def check_limits(self, limits: VehicleLimits) -> None:
        """Raise ConfigError for a command beyond the car's limits (the backend's VehicleLimits)."""

    @abc.abstractmethod
    def space(self) -> gym.Space:
        """The gymnasium action space."""

    @abc.abstractmethod
    def to_commands(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steering_deg, speed_mps, action_index or -1), each (N,), for N actions stacked on the first axis."""

    def to_command(self, action: Any) -> tuple[float, float, int]:
        """(steering_deg, speed_mps, action_index or -1) for one action."""
        steering, speed, index = self.to_commands(np.asarray(action)[None])
        return float(steering[0]), float(speed[0]), int(index[0])


class ContinuousAction(ActionType):
    """DeepRacer's continuous action space: Box([-1, 1]²) scaled to steering and speed ranges."""

    class Settings(Section):
        """env_config.action for type continuous."""

        steering_deg: LowHigh = Field([-_MAX_STEER_DEG, _MAX_STEER_DEG],
                                      description="steering range, degrees (negative = right, as DeepRacer)")
        speed_mps: LowHigh = Field([0.5, _MAX_SPEED_MPS], description="target-speed range, m/s")

        check_ranges = field_validator("steering_deg", "speed_mps")(_low_high)

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self._low = np.array([self.config["steering_deg"][0], self.config["speed_mps"][0]], dtype=np.float64)
        self._high = np.array([self.config["steering_deg"][1], self.config["speed_mps"][1]], dtype=np.float64)
        self._ranges = (*self._low.tolist(), *self._high.tolist())  # steer lo, speed lo, steer hi, speed hi

    def space(self) -> gym.Space:
        return gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def to_commands(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = np.clip(np.asarray(actions, dtype=np.float64).reshape(-1, 2), -1.0, 1.0)
        steer_lo, speed_lo, steer_hi, speed_hi = self._ranges
        steering_deg = steer_lo + (a[:, 0] + 1.0) * 0.5 * (steer_hi - steer_lo)
        speed_mps = speed_lo + (a[:, 1] + 1.0) * 0.5 * (speed_hi - speed_lo)
        return steering_deg, speed_mps, np.full(len(a), -1)


class DiscreteAction(ActionType):
    """A list of {steering_angle, speed} pairs, as in DeepRacer's model_metadata.json."""

    class Settings(Section):
        """env_config.action for type discrete."""

        actions: Annotated[list[DiscreteActionEntry], Field(min_length=1),
                           Expect("a non-empty list of {steering_angle: degrees, speed: m/s}")] = Field(
            default_factory=lambda: [DiscreteActionEntry(**a) for a in DEEPRACER_DEFAULT_ACTIONS],
            description="list of `{steering_angle: deg, speed: m/s}` (DeepRacer's model_metadata.json form), within the car's limits",
            json_schema_extra={"shown_default": "DeepRacer's 10: ±30, ±15, 0° × 0.5, 1 m/s"})

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        actions = self.config["actions"]
        self._table = np.array([(a["steering_angle"], a["speed"]) for a in actions], dtype=np.float64)

    def check_limits(self, limits: VehicleLimits) -> None:
        """Raise ConfigError for an action beyond the car's steering lock or top speed."""
        for i, (steering_deg, speed_mps) in enumerate(self._table.tolist()):
            if abs(steering_deg) > limits.max_steering_deg or not 0 <= speed_mps <= limits.max_speed_mps:
                raise ConfigError(
                    f"env_config.action.actions[{i}] {{steering_angle: {steering_deg:g}, speed: {speed_mps:g}}} is out of "
                    f"range; the car's steering_angle must be in [-{limits.max_steering_deg:g}, {limits.max_steering_deg:g}] "
                    f"degrees and speed in [0, {limits.max_speed_mps:g}] m/s")

    def space(self) -> gym.Space:
        return gym.spaces.Discrete(len(self._table))

    def to_commands(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = np.asarray(actions).reshape(-1).astype(np.int64)
        rows = self._table[index]
        return rows[:, 0], rows[:, 1], index


ACTION_TYPES: dict[str, type[ActionType]] = {"continuous": ContinuousAction, "discrete": DiscreteAction}


def make_action_type(config: Mapping[str, Any], limits: VehicleLimits | None = None) -> ActionType:
    """The action type named by config['type']; with `limits`, its commands are checked against the car's."""
    action = pick_type(config, ACTION_TYPES, "action", "continuous")(config)
    if limits is not None:
        action.check_limits(limits)
    return action
