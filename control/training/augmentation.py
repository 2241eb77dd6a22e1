"""Image augmentation for PPO (RAD/DrAC random shift): the `augmentation:` section and the array op.

Ray-free, so the config loader reads the section without importing RLlib; the learner connector
piece that applies it lives in control/training/augmentation_connector.py.
"""
from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import Field

from control.config_schema import PositiveWhole, Section, Text, one_of, parse_section

AUGMENTATION_TYPES = ("none", "random_shift")


class AugmentationConfig(Section):
    """The config's `augmentation:` section: what the learner does to camera frames before each update."""

    type: Annotated[Text, one_of(*AUGMENTATION_TYPES)] = Field(
        "none", description="none | random_shift (pad by pad_px with edge pixels, crop back at a random offset, per frame)")
    pad_px: PositiveWhole = Field(4, description="largest shift, pixels (RAD: 4 on 84x84)")


def resolve_augmentation(section: Any, where: str) -> dict[str, Any]:
    """The `augmentation:` section with its defaults; a bad key or value is a one-line ConfigError."""
    return parse_section(AugmentationConfig, section, where).model_dump()


def random_shift(images: np.ndarray, pad_px: int, rng: np.random.Generator) -> np.ndarray:
    """(..., H, W, C) images, each shifted by its own random offset in [-pad_px, pad_px] (edge pixels fill in).

    Same shape and dtype as `images`; leading axes (batch, time) are flattened and restored.
    """
    *lead, h, w, c = images.shape
    flat = images.reshape(-1, h, w, c)
    n, side = flat.shape[0], 2 * pad_px + 1
    padded = np.pad(flat, ((0, 0), (pad_px, pad_px), (pad_px, pad_px), (0, 0)), mode="edge")
    dy = rng.integers(0, side, size=n)
    dx = rng.integers(0, side, size=n)
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
