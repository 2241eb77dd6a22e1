"""Registration of the env ids with Gymnasium and RLlib (idempotent)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

ENTRY_POINT = "control.env.racing_env:RacingEnv"
# Each id fixes the observation type; every other env_config key is a keyword argument.
ENV_IDS: dict[str, dict[str, Any]] = {
    "RacerVLidar-v0": {"observation": {"type": "vlidar"}},
    "RacerCamera-v0": {"observation": {"type": "camera"}},
}


def register_gym_envs() -> None:
    """Register the ids with Gymnasium, once."""
    for env_id, defaults in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs=defaults)


def make_env_creator(env_id: str):
    """An RLlib env creator: env_config (an EnvContext) → RacingEnv with the id's defaults."""
    defaults = ENV_IDS[env_id]

    def creator(env_config):
        from control.env.racing_env import RacingEnv

        merged = {**defaults, **dict(env_config or {})}
        if hasattr(env_config, "copy_with_overrides"):  # keep worker_index / vector_index
            merged = env_config.copy_with_overrides(env_config=merged)
        return RacingEnv(merged)

    return creator


def register_rllib_envs() -> None:
    """Register the ids with Ray Tune's registry so RLlib env runners can build them by name."""
    from ray.tune.registry import register_env

    for env_id in ENV_IDS:
        register_env(env_id, make_env_creator(env_id))
