"""Registration of the env ids with Gymnasium and RLlib (idempotent)."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

ENTRY_POINT = "control.env.racing_env:RacingEnv"
VECTOR_ENTRY_POINT = "control.env.vector_env:RacingVectorEnv"  # gym.make_vec(..., vectorization_mode="vector_entry_point")
# Each id fixes the observation type; every other env_config key is a keyword argument.
ENV_IDS: dict[str, dict[str, Any]] = {
    "RacerVLidar-v0": {"observation": {"type": "vlidar"}},
    "RacerCamera-v0": {"observation": {"type": "camera"}},
}


def register_gym_envs() -> None:
    """Register the ids with Gymnasium, once."""
    for env_id, defaults in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, vector_entry_point=VECTOR_ENTRY_POINT, kwargs=defaults)


def _rllib_worker_index() -> int:
    """The index of the RLlib env runner building the env, found on the call stack.

    RLlib 2.60's vector_entry_point passes `env_ctx | {"num_envs": n}`, a plain dict that has lost
    the EnvContext's worker_index; the env runner that calls us still knows it.
    """
    import sys

    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__name__.endswith("EnvRunner") and hasattr(owner, "worker_index"):
            return int(owner.worker_index or 0)
        frame = frame.f_back
    return 0


def make_env_creator(env_id: str):
    """An RLlib env creator: env_config (an EnvContext) → RacingEnv, or RacingVectorEnv when it holds num_envs."""
    defaults = ENV_IDS[env_id]

    def creator(env_config):
        merged = {**defaults, **dict(env_config or {})}
        if "num_envs" in merged:  # RLlib's gym_env_vectorize_mode: vector_entry_point
            from control.env.vector_env import RacingVectorEnv

            num_envs = int(merged.pop("num_envs"))
            worker_index = int(getattr(env_config, "worker_index", None) or _rllib_worker_index())
            if hasattr(env_config, "copy_with_overrides"):
                merged = env_config.copy_with_overrides(env_config=merged)
            else:
                merged["worker_index"] = worker_index
            return RacingVectorEnv(merged, num_envs=num_envs)
        from control.env.racing_env import RacingEnv

        if hasattr(env_config, "copy_with_overrides"):  # keep worker_index / vector_index
            merged = env_config.copy_with_overrides(env_config=merged)
        return RacingEnv(merged)

    return creator


def register_rllib_envs() -> None:
    """Register the ids with Ray Tune's registry so RLlib env runners can build them by name."""
    from ray.tune.registry import register_env

    for env_id in ENV_IDS:
        register_env(env_id, make_env_creator(env_id))
