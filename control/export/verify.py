"""Recorded observations and the ONNX-vs-torch comparison over them (the export's own check)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from control.export.graph import CommandMapping, stack_observations
from control.export.layout import ACTION_OUTPUT, SPEED_OUTPUT, STEERING_OUTPUT, onnx_feeds

CONTINUOUS_TOLERANCE = 1e-5  # max |ONNX - torch| of the normalised action the export accepts


@dataclass
class Recording:
    """Observations the env emitted while the torch policy drove, and the torch policy's action for each."""

    observations: np.ndarray | dict[str, np.ndarray]  # (n, *observation shape), the env's dtype; a Dict: one per key
    actions: np.ndarray  # (n, 2) float32 or (n,) int64
    episodes: int


def record_observations(env: Any, policy: Any, count: int, seed: int) -> Recording:
    """Drive `env` with `policy` (deterministic) for `count` steps over as many episodes as that takes."""
    observations, actions = [], []
    obs, _ = env.reset(seed=seed)
    episodes = 1
    for _ in range(count):
        action = policy.compute_action(obs)
        observations.append({k: np.array(v, copy=True) for k, v in obs.items()} if isinstance(obs, dict)
                            else np.array(obs, copy=True))
        actions.append(action)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
            episodes += 1
    return Recording(stack_observations(observations), np.asarray(actions), episodes)


def env_commands(action_type: Any, mapping: CommandMapping, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(steering_deg, speed_mps) the env commands for `actions`, clipped to the car's envelope as the backend does."""
    steering, speed, _ = action_type.to_commands(actions)
    return (np.clip(steering, -mapping.max_steering_deg, mapping.max_steering_deg),
            np.clip(speed, 0.0, mapping.max_speed_mps))


def compare(session: Any, recording: Recording, action_type: Any, mapping: CommandMapping) -> dict[str, Any]:
    """Run the ONNX model on every recorded observation; max differences to the torch policy and the env mapping."""
    feeds = onnx_feeds(recording.observations, [i.name for i in session.get_inputs()])
    out = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))
    steering_env, speed_env = env_commands(action_type, mapping, recording.actions)
    result: dict[str, Any] = {
        "observations": int(len(recording.actions)),
        "episodes": recording.episodes,
        "max_abs_diff_steering_deg": float(np.max(np.abs(out[STEERING_OUTPUT] - steering_env))),
        "max_abs_diff_speed_mps": float(np.max(np.abs(out[SPEED_OUTPUT] - speed_env))),
    }
    if mapping.kind == "discrete":
        result["index_mismatches"] = int(np.count_nonzero(out[ACTION_OUTPUT] != recording.actions))
        result["passed"] = result["index_mismatches"] == 0
    else:
        result["max_abs_diff_action"] = float(np.max(np.abs(out[ACTION_OUTPUT] - recording.actions)))
        result["tolerance"] = CONTINUOUS_TOLERANCE
        result["passed"] = result["max_abs_diff_action"] <= CONTINUOUS_TOLERANCE
    return result
