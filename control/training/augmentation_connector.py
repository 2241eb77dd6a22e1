"""The learner side of image augmentation: a ConnectorV2 piece and the PPO learner that inserts it.

RLlib prepends custom learner connector pieces before the batch exists, so the piece is placed by
`AugmentedPPOTorchLearner` right before NumpyToTensor: the loss (and GAE's value pass) trains on
shifted frames while env runners, evaluation and exported models only ever see raw frames.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import NumpyToTensor
from ray.rllib.core.columns import Columns

from control.training.augmentation import random_shift

# Key under which build_ppo_config hands the section to the learner (AlgorithmConfig.learner_config_dict).
LEARNER_CONFIG_KEY = "augmentation"


def _is_image(value: Any) -> bool:
    """A numpy (..., H, W, C) array: what a camera observation batches to."""
    return isinstance(value, np.ndarray) and value.ndim >= 4


class RandomShift(ConnectorV2):
    """Learner connector piece: shifts every image observation of the numpy train batch (a Dict's image parts too)."""

    def __init__(self, input_observation_space: Any = None, input_action_space: Any = None, *,
                 pad_px: int = 4, seed: int | None = None, **kwargs: Any):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.pad_px = int(pad_px)
        self.rng = np.random.default_rng(seed)

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs: Any) -> Any:
        """Replace batch[module][obs] (or its image entries) by shifted copies; the episodes stay as sampled."""
        for module_batch in batch.values():
            if not isinstance(module_batch, dict) or Columns.OBS not in module_batch:
                continue
            obs = module_batch[Columns.OBS]
            if _is_image(obs):
                module_batch[Columns.OBS] = random_shift(obs, self.pad_px, self.rng)
            elif isinstance(obs, dict):
                module_batch[Columns.OBS] = {key: random_shift(value, self.pad_px, self.rng) if _is_image(value) else value
                                             for key, value in obs.items()}
        return batch


def make_augmentation_piece(augmentation: dict[str, Any]) -> RandomShift | None:
    """The learner connector piece for a resolved `augmentation:` section (plus its `seed`), or None for type none."""
    if augmentation.get("type", "none") == "none":
        return None
    return RandomShift(pad_px=augmentation["pad_px"], seed=augmentation.get("seed"))


class AugmentedPPOTorchLearner(PPOTorchLearner):
    """PPO's torch learner with the config's augmentation inserted before NumpyToTensor in its connector."""

    def build(self) -> None:
        """Build as PPO does, then add the augmentation piece where the numpy train batch is complete."""
        super().build()
        piece = make_augmentation_piece((self.config.learner_config_dict or {}).get(LEARNER_CONFIG_KEY) or {})
        if piece is not None and self._learner_connector is not None:
            self._learner_connector.insert_before(NumpyToTensor, piece)
