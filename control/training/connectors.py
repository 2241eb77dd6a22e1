"""RLlib connectors that carry old config settings the new API stack would otherwise ignore."""
from __future__ import annotations

import functools
from typing import Any

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter


def mean_std_filter_connector(env: Any = None, spaces: Any = None, device: Any = None) -> ConnectorV2:
    """`observation_filter: MeanStdFilter` on the new stack: RLlib's running mean/std connector."""
    return MeanStdFilter()


class ClipRewards(ConnectorV2):
    """Learner connector that clips every episode's rewards to [-limit, limit] before GAE (`clip_rewards`)."""

    def __init__(self, input_observation_space: Any = None, input_action_space: Any = None, *,
                 limit: float = 1.0, **kwargs: Any):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.limit = float(limit)

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs: Any) -> Any:
        """Clip the rewards stored in the episodes in place; the batch is built from them afterwards."""
        for episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            rewards = np.asarray(episode.get_rewards(), dtype=np.float64)
            if rewards.size:
                clipped = np.clip(rewards, -self.limit, self.limit)
                episode.set_rewards(new_data=clipped if isinstance(episode.get_rewards(), np.ndarray)
                                    else clipped.tolist(), at_indices=slice(0, len(rewards)))
        return batch


def _build_clip_rewards(limit: float, input_observation_space: Any = None, input_action_space: Any = None,
                        device: Any = None) -> ClipRewards:
    return ClipRewards(input_observation_space, input_action_space, limit=limit)


def clip_rewards_connector(limit: float) -> Any:
    """Builder for `config.training(learner_connector=...)` that clips rewards to ±limit."""
    return functools.partial(_build_clip_rewards, limit)
