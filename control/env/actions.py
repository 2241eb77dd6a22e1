"""Action types: how a policy's action becomes a steering angle (degrees) and a target speed (m/s)."""
from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from control.env.typed_section import merge_section, pick_type
from control.errors import ConfigError

# DeepRacer's default discrete action space (model_metadata.json form): 5 steering angles
# x 2 speeds, as the console creates it (max steering 30°, granularity 5; 2 speed levels).
DEEPRACER_DEFAULT_ACTIONS: list[dict[str, float]] = [
    {"steering_angle": s, "speed": v} for s in (-30.0, -15.0, 0.0, 15.0, 30.0) for v in (0.5, 1.0)
]


class ActionType(abc.ABC):
    """Maps the policy's action space to (steering_deg, speed_mps) commands."""

    defaults: dict[str, Any] = {}

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = merge_section(config, self.defaults, "action")

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

    defaults = {
        "steering_deg": [-30.0, 30.0],  # steering range, degrees (negative = right, as DeepRacer)
        "speed_mps": [0.5, 4.0],  # target-speed range, m/s
    }

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        for key in ("steering_deg", "speed_mps"):
            lo_hi = self.config[key]
            if not (isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2 and float(lo_hi[0]) < float(lo_hi[1])):
                raise ConfigError(f"env_config.action.{key} must be [low, high] with low < high, got {lo_hi!r}")
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

    defaults = {"actions": DEEPRACER_DEFAULT_ACTIONS}  # list of {steering_angle: deg, speed: m/s}

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        actions = self.config["actions"]
        if not isinstance(actions, list) or not actions:
            raise ConfigError("env_config.action.actions must be a non-empty list of {steering_angle, speed}")
        table = []
        for i, entry in enumerate(actions):
            if not isinstance(entry, Mapping) or set(entry) - {"steering_angle", "speed", "index"} or not {"steering_angle", "speed"} <= set(entry):
                raise ConfigError(
                    f"env_config.action.actions[{i}] is {entry!r}; expected {{steering_angle: degrees, speed: m/s}}"
                )
            if abs(float(entry["steering_angle"])) > 30 or not 0 <= float(entry["speed"]) <= 4:
                raise ConfigError(
                    f"env_config.action.actions[{i}] {dict(entry)} is out of range; steering_angle must be in [-30, 30] degrees and speed in [0, 4] m/s"
                )
            table.append((float(entry["steering_angle"]), float(entry["speed"])))
        self._table = np.array(table, dtype=np.float64)

    def space(self) -> gym.Space:
        return gym.spaces.Discrete(len(self._table))

    def to_commands(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        index = np.asarray(actions).reshape(-1).astype(np.int64)
        rows = self._table[index]
        return rows[:, 0], rows[:, 1], index


ACTION_TYPES: dict[str, type[ActionType]] = {"continuous": ContinuousAction, "discrete": DiscreteAction}


def make_action_type(config: Mapping[str, Any]) -> ActionType:
    """The action type named by config['type']."""
    return pick_type(config, ACTION_TYPES, "action", "continuous")(config)
