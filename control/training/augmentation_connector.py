"""The learner side of image augmentation: a ConnectorV2 piece and the PPO learner that inserts it.

RLlib prepends custom learner connector pieces before the batch exists, so the piece is placed by
`AugmentedPPOTorchLearner` right before NumpyToTensor. Method `rad` replaces the batch's frames by
shifted ones (the loss and GAE's value pass train on them); method `drac` adds the shifted frames as
their own column and the learner's loss adds DrAC's regulariser: KL(pi(raw) || pi(shifted)) plus
(V(raw) - V(shifted))^2, the raw side held fixed. Env runners, evaluation and exported models only
ever see raw frames.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import tree
from ray.rllib.algorithms.ppo.torch.ppo_torch_learner import PPOTorchLearner
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner import NumpyToTensor
from ray.rllib.core.columns import Columns
from ray.rllib.utils.framework import try_import_torch

from control.training.augmentation import AugmentationConfig, random_shift

torch, _ = try_import_torch()

# Key under which build_ppo_config hands the section to the learner (AlgorithmConfig.learner_config_dict).
LEARNER_CONFIG_KEY = "augmentation"
# The train batch column method drac puts the shifted observations in (the raw ones stay in obs).
AUGMENTED_OBS = "obs_shifted"
# Learner metrics of method drac (under learners/<module>/).
DRAC_POLICY_KEY, DRAC_VALUE_KEY = "drac_policy_kl", "drac_value_mse"


def _is_image(value: Any) -> bool:
    """A numpy (..., H, W, C) array: what a camera observation batches to."""
    return isinstance(value, np.ndarray) and value.ndim >= 4


class RandomShift(ConnectorV2):
    """Learner connector piece: shifts every image observation of the numpy train batch (a Dict's image parts too)."""

    def __init__(self, input_observation_space: Any = None, input_action_space: Any = None, *,
                 pad_px: int = 4, seed: int | None = None, axes: str = "both", column: str = Columns.OBS, **kwargs: Any):
        super().__init__(input_observation_space, input_action_space, **kwargs)
        self.pad_px, self.axes, self.column = int(pad_px), axes, column
        self.rng = np.random.default_rng(seed)

    def _shift(self, value: Any) -> Any:
        return random_shift(value, self.pad_px, self.rng, self.axes) if _is_image(value) else value

    def __call__(self, *, rl_module: Any, batch: dict[str, Any], episodes: list[Any], **kwargs: Any) -> Any:
        """Put shifted copies of batch[module][obs] (or of its image entries) under `column`; the episodes stay as sampled."""
        for module_batch in batch.values():
            if not isinstance(module_batch, dict) or Columns.OBS not in module_batch:
                continue
            obs = module_batch[Columns.OBS]
            if _is_image(obs):
                module_batch[self.column] = self._shift(obs)
            elif isinstance(obs, dict):
                module_batch[self.column] = {key: self._shift(value) for key, value in obs.items()}
        return batch


def _with_defaults(augmentation: dict[str, Any]) -> dict[str, Any]:
    """An `augmentation:` section (plus its `seed`) with AugmentationConfig's defaults for the keys it leaves out."""
    return {**AugmentationConfig().model_dump(), **augmentation}


def make_augmentation_piece(augmentation: dict[str, Any]) -> RandomShift | None:
    """The learner connector piece for a resolved `augmentation:` section (plus its `seed`), or None for type none."""
    augmentation = _with_defaults(augmentation)
    if augmentation["type"] == "none":
        return None
    column = AUGMENTED_OBS if augmentation["method"] == "drac" else Columns.OBS
    return RandomShift(pad_px=augmentation["pad_px"], seed=augmentation.get("seed"), axes=augmentation["axes"], column=column)


class AugmentedPPOTorchLearner(PPOTorchLearner):
    """PPO's torch learner with the config's augmentation inserted before NumpyToTensor in its connector."""

    def build(self) -> None:
        """Build as PPO does, then add the augmentation piece where the numpy train batch is complete."""
        super().build()
        section = _with_defaults((self.config.learner_config_dict or {}).get(LEARNER_CONFIG_KEY) or {})
        self.drac_coeff, self.drac_fraction = float(section["drac_coeff"]), float(section["drac_fraction"])
        piece = make_augmentation_piece(section)
        if piece is not None and self._learner_connector is not None:
            self._learner_connector.insert_before(NumpyToTensor, piece)

    def compute_loss_for_module(self, *, module_id: Any, config: Any, batch: dict[str, Any], fwd_out: dict[str, Any]) -> Any:
        """PPO's loss; with shifted frames in the batch (method drac) plus drac_coeff x DrAC's regulariser."""
        total_loss = super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        if AUGMENTED_OBS not in batch:
            return total_loss
        module = self.module[module_id].unwrapped()
        raw_inputs = fwd_out[Columns.ACTION_DIST_INPUTS]
        # The regulariser is an average over states: the first rows of a shuffled minibatch estimate it
        # at a fraction of the cost (a recurrent module's rows are sequences with state: all of them).
        n = len(raw_inputs) if module.is_stateful() else max(1, math.ceil(self.drac_fraction * len(raw_inputs)))
        head = (lambda x: x[:n]) if n < len(raw_inputs) else (lambda x: x)
        mask = batch.get(Columns.LOSS_MASK)
        mask = head(mask) if mask is not None else None

        def masked_mean(values: Any) -> Any:
            # A head of only masked rows (the bootstrap steps) regularises nothing this minibatch.
            return (values[mask].sum() / mask.sum().clamp(min=1)) if mask is not None else values.mean()

        raw_batch = {**batch, Columns.OBS: tree.map_structure(head, batch[Columns.OBS])}
        shifted_batch = {**batch, Columns.OBS: tree.map_structure(head, batch[AUGMENTED_OBS])}
        shifted_out = module.forward_train(shifted_batch)
        dist_class = module.get_train_action_dist_cls()
        raw_dist = dist_class.from_logits(head(raw_inputs).detach())
        shifted_dist = dist_class.from_logits(shifted_out[Columns.ACTION_DIST_INPUTS])
        policy_kl = masked_mean(raw_dist.kl(shifted_dist))
        regulariser = policy_kl
        value_mse = torch.zeros((), device=policy_kl.device)
        if config.use_critic:
            with torch.no_grad():
                embeddings = fwd_out.get(Columns.EMBEDDINGS)
                raw_values = module.compute_values(raw_batch, embeddings=head(embeddings) if embeddings is not None else None)
            shifted_values = module.compute_values(shifted_batch, embeddings=shifted_out.get(Columns.EMBEDDINGS))
            value_mse = masked_mean((raw_values - shifted_values) ** 2)
            regulariser = regulariser + value_mse
        self.metrics.log_dict({DRAC_POLICY_KEY: policy_kl, DRAC_VALUE_KEY: value_mse}, key=module_id, window=1)
        return total_loss + self.drac_coeff * regulariser
