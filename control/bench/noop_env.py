"""A no-op env with a racing env's spaces: the training benchmark's baseline for "what does the env cost".

Constant observation, reward 0, never terminates; truncates at the racing env's
max_episode_steps. Trained with the same config as the real env, it leaves only RLlib's own
sampling and learning costs, so the difference in iteration time is the env's share.
"""
from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

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


def register_noop_env() -> str:
    """Register NOOP_ENV_ID with Gymnasium (the config loader checks it) and RLlib (runners build it); idempotent."""
    from ray.tune.registry import register_env

    if NOOP_ENV_ID not in gym.registry:
        gym.register(id=NOOP_ENV_ID, entry_point="control.bench.noop_env:NoopEnv")
    register_env(NOOP_ENV_ID, lambda env_config: NoopEnv(dict(env_config or {})))
    return NOOP_ENV_ID
