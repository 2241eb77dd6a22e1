"""RacingVectorEnv: a native gymnasium VectorEnv over the race core, N cars stepped in one call.

Autoreset: gymnasium's NEXT_STEP mode, as RLlib's env runners expect: the step after a car's
episode ends resets that car (its action is ignored) and returns its reset observation with
reward 0, terminated and truncated False, and the reset info. Car i's seed: reset(seed=s) gives
s + i; without one, env_config.seed + 1000 * worker_index + vector_index + i; so the batch
size never changes a car's episode.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from control.env.config import validate_env_config
from control.env.race import RaceBatch


class RacingVectorEnv(gym.vector.VectorEnv):
    """N racing cars of one env_config as a gymnasium VectorEnv (built-in simulator: one batched backend)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, config: Mapping[str, Any] | None = None, num_envs: int = 1, **kwargs: Any) -> None:
        raw = {**dict(config or {}), **kwargs}
        num_envs = int(raw.pop("num_envs", num_envs))
        self.worker_index = int(getattr(config, "worker_index", raw.pop("worker_index", 0)) or 0)
        self.vector_index = int(getattr(config, "vector_index", raw.pop("vector_index", 0)) or 0)
        is_evaluation = bool(getattr(config, "in_evaluation", False) or raw.pop("_in_evaluation", False))
        self.config = validate_env_config(raw)
        if self.config["simulator"] != "builtin" and num_envs != 1:
            from control.errors import ConfigError

            raise ConfigError(f"env_config.simulator {self.config['simulator']!r} drives one car per server; "
                              "use gym_env_vectorize_mode: sync (one env per car) instead of vector_entry_point")
        self.num_envs = num_envs
        self.race = RaceBatch(self.config, num_envs, worker_index=self.worker_index, vector_index=self.vector_index,
                              is_evaluation=is_evaluation)
        self.single_observation_space = self.race.observation_type.space()
        self.single_action_space = self.race.action_type.space()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.render_mode = None
        self._autoreset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Reset every car; an int seed gives car i seed + i, a list one seed per car."""
        if isinstance(seed, int):
            seeds: list[int | None] = [seed + i for i in range(self.num_envs)]
        elif seed is None:
            seeds = [None] * self.num_envs
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed=...) got {len(seeds)} seeds for {self.num_envs} cars")
        obs, infos = self.race.reset_cars(np.arange(self.num_envs), seeds, options)
        self._autoreset[:] = False
        return obs, infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every car; cars whose episode ended on the previous step are reset instead (NEXT_STEP), in the same pass."""
        resetting = self._autoreset if self._autoreset.any() else None
        obs, reward, terminated, truncated, infos = self.race.step(actions, resetting=resetting)
        self._autoreset = terminated | truncated
        return obs, reward, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Release the backend."""
        self.race.close()
