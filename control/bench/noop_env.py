"""A no-op env with a racing env's spaces: the training benchmark's baseline for "what does the env cost".

Constant observation, reward 0, never terminates; truncates at the racing env's
max_episode_steps. Trained with the same config as the real env, it leaves only RLlib's own
sampling and learning costs, so the difference in iteration time is the env's share.
"""
from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

NOOP_ENV_ID = "BenchNoop-v0"
NOOP_OF_KEY = "noop_of"  # env_config key naming the racing env id whose spaces are copied

_spaces_cache: dict[str, tuple[gym.Space, gym.Space, int]] = {}


def racing_spaces(env_id: str, env_config: dict[str, Any]) -> tuple[gym.Space, gym.Space, int]:
    """(observation space, action space, max_episode_steps) of racing env `env_id` with `env_config`."""
    key = json.dumps([env_id, env_config], sort_keys=True, default=str)
    if key not in _spaces_cache:
        from control.env.registration import make_env_creator

        env = make_env_creator(env_id)(env_config)
        try:
            _spaces_cache[key] = (env.observation_space, env.action_space, int(env.config["max_episode_steps"]))
        finally:
            env.close()
    return _spaces_cache[key]


class NoopEnv(gym.Env):
    """Same spaces as a racing env, no simulation: constant observation, reward 0, time limit only."""

    metadata = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = {k: v for k, v in dict(config or {}).items() if k not in ("worker_index", "vector_index")}
        env_id = config.pop(NOOP_OF_KEY, "RacerVLidar-v0")
        self.observation_space, self.action_space, self.max_episode_steps = racing_spaces(env_id, config)
        self.observation_space.seed(0)
        self._obs = self.observation_space.sample()  # one fixed observation inside the space
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Back to step 0; the observation never changes."""
        super().reset(seed=seed)
        self._steps = 0
        return self._obs, {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        """Count the step; truncate at max_episode_steps."""
        self._steps += 1
        return self._obs, 0.0, False, self._steps >= self.max_episode_steps, {}


class NoopVectorEnv(gym.vector.VectorEnv):
    """N no-op cars as one native VectorEnv: the baseline of the racing vector env (gym_env_vectorize_mode: vector_entry_point)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, config: dict[str, Any] | None, num_envs: int) -> None:
        single = NoopEnv(config)
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = single.observation_space, single.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.max_episode_steps = single.max_episode_steps
        empty = create_empty_array(self.single_observation_space, self.num_envs)
        self._obs = concatenate(self.single_observation_space, [single._obs] * self.num_envs, empty)
        self._steps = np.zeros(self.num_envs, dtype=np.int64)
        self._autoreset = np.zeros(self.num_envs, dtype=bool)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        """Every car back to step 0."""
        self._steps[:] = 0
        self._autoreset[:] = False
        return self._copy_obs(), {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Count the steps; a car truncated last step starts again (NEXT_STEP autoreset)."""
        self._steps = np.where(self._autoreset, 0, self._steps + 1)
        truncated = self._steps >= self.max_episode_steps
        self._autoreset = truncated
        return self._copy_obs(), np.zeros(self.num_envs), np.zeros(self.num_envs, dtype=bool), truncated, {}

    def _copy_obs(self) -> Any:
        return {k: v.copy() for k, v in self._obs.items()} if isinstance(self._obs, dict) else self._obs.copy()


def make_noop_env(env_config: dict[str, Any] | None) -> gym.Env | gym.vector.VectorEnv:
    """RLlib's creator: NoopEnv, or NoopVectorEnv when RLlib's vector_entry_point passes num_envs."""
    config = dict(env_config or {})
    if "num_envs" in config:
        num_envs = int(config.pop("num_envs"))
        return NoopVectorEnv(config, num_envs)
    return NoopEnv(config)


def register_noop_env() -> str:
    """Register NOOP_ENV_ID with Gymnasium (the config loader checks it) and RLlib (runners build it); idempotent."""
    from ray.tune.registry import register_env

    if NOOP_ENV_ID not in gym.registry:
        gym.register(id=NOOP_ENV_ID, entry_point="control.bench.noop_env:NoopEnv")
    register_env(NOOP_ENV_ID, make_noop_env)
    return NOOP_ENV_ID
