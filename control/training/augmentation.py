"""Image augmentation for PPO (RAD/DrAC random shift): the `augmentation:` section and the array op.

Two ways to use the shifted frames (`method`): `drac` (DrAC, Raileanu et al. 2021, the default) keeps
PPO's loss on the frames as sampled and adds a regulariser that pulls the policy and value on shifted
frames towards those on the raw ones; `rad` (RAD, Laskin et al. 2020) trains PPO's loss on the shifted
frames, whose action log-probabilities the sampler computed on unshifted ones, so the ratio is off
from the first epoch (DrAC's section 3), and a policy that is not yet shift-invariant can only raise
the likelihood of its own sampled actions by widening its distribution.

Ray-free, so the config loader reads the section without importing RLlib; the learner connector
piece that applies it lives in control/training/augmentation_connector.py.
"""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field, Strict

from control.config_schema import Expect, NonNegativeNumber, PositiveWhole, Section, Text, one_of, parse_section

AUGMENTATION_TYPES = ("none", "random_shift")
AUGMENTATION_METHODS = ("drac", "rad")
SHIFT_AXES = ("both", "vertical")


class AugmentationConfig(Section):
    """The config's `augmentation:` section: what the learner does to camera frames before each update."""

    type: Annotated[Text, one_of(*AUGMENTATION_TYPES)] = Field(
        "none", description="none | random_shift (pad by pad_px with edge pixels, crop back at a random offset, per frame)")
    pad_px: PositiveWhole = Field(4, description="largest shift, pixels (RAD: 4 on 84x84)")
    axes: Annotated[Text, one_of(*SHIFT_AXES)] = Field(
        "both", description="both | vertical (a sideways shift is a heading change of the camera, which changes the steering a frame calls for)")
    method: Annotated[Text, one_of(*AUGMENTATION_METHODS)] = Field(
        "drac", description="drac (PPO's loss on raw frames plus drac_coeff x a shift-invariance regulariser) | "
                            "rad (PPO's loss on shifted frames)")
    drac_coeff: NonNegativeNumber = Field(
        0.1, description="method drac: weight of the policy-KL and value-MSE terms between raw and shifted frames (DrAC: 0.1)")
    drac_fraction: Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False), Expect("a number in (0, 1]")] = Field(
        0.25, description="method drac: share of each (shuffled) minibatch the regulariser is estimated on: its extra CNN "
                          "passes cost this share of the update (1: the whole minibatch, as in DrAC)")


def resolve_augmentation(section: Any, where: str) -> dict[str, Any]:
    """The `augmentation:` section with its defaults; a bad key or value is a one-line ConfigError."""
    return parse_section(AugmentationConfig, section, where).model_dump()


def random_shift(images: np.ndarray, pad_px: int, rng: np.random.Generator, axes: str = "both") -> np.ndarray:
    """(..., H, W, C) images, each shifted by its own random offset in [-pad_px, pad_px] (edge pixels fill in).

    `axes="vertical"` shifts rows only. Same shape and dtype as `images`; leading axes (batch, time)
    are flattened and restored.
    """
    *lead, h, w, c = images.shape
    flat = images.reshape(-1, h, w, c)
    n, side = flat.shape[0], 2 * pad_px + 1
    pad_x = 0 if axes == "vertical" else pad_px
    padded = np.pad(flat, ((0, 0), (pad_px, pad_px), (pad_x, pad_x), (0, 0)), mode="edge")
    dy = rng.integers(0, side, size=n)
    dx = rng.integers(0, side, size=n) if pad_x else np.zeros(n, dtype=np.int64)
    # One slice copy per offset (side**2 of them, not one per frame): ~2.5x faster than a (n, H, W) fancy-index gather.
    offset = dy * side + dx
    order = np.argsort(offset, kind="stable")
    bounds = np.searchsorted(offset[order], np.arange(side * side + 1))
    out = np.empty_like(flat)
    for o in np.flatnonzero(np.diff(bounds)).tolist():
        frames = order[bounds[o]:bounds[o + 1]]
        y, x = divmod(o, side)
        out[frames] = padded[frames, y:y + h, x:x + w]
    return out.reshape(images.shape)
