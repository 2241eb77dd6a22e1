"""PPO on a Dict observation of one image and one vector (types `both`, `deepracer_evo`): RLlib's own parts, joined.

RLlib's PPOCatalog has no encoder for a Dict. `DictPPOCatalog` builds one from the encoders RLlib picks for each
part alone: its CNN for the image (`conv_filters`, `conv_activation`, as for a camera Box) and its MLP for the
vector (`fcnet_hiddens`, `fcnet_activation`, as for a lidar Box), and concatenates their outputs. Everything else
is RLlib's default PPO module: the policy and value heads (`head_fcnet_hiddens`), `vf_share_layers` (one encoder,
or one for the actor and one for the critic), the value function API, checkpoints. A uint8 image is scaled to
[0, 1] inside the encoder (RLlib's CNN takes float), so the env's observation goes in unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.algorithms.ppo.ppo_catalog import PPOCatalog
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT, Encoder
from ray.rllib.core.models.configs import ModelConfig
from ray.rllib.core.models.torch.base import TorchModel

from control.errors import ConfigError

IMAGE_RANK = 3  # (height, width, channels)
VECTOR_RANK = 1
UINT8_MAX = 255.0


@dataclass(frozen=True)
class DictLayout:
    """Which key of the Dict is the image and which is the vector."""

    image_key: str
    vector_key: str


def dict_layout(space: gym.spaces.Dict) -> DictLayout:
    """The image and vector keys of `space`; ConfigError (one line) for any other layout."""
    parts = {key: sub for key, sub in space.spaces.items()}
    images = [k for k, s in parts.items() if isinstance(s, gym.spaces.Box) and len(s.shape) == IMAGE_RANK]
    vectors = [k for k, s in parts.items() if isinstance(s, gym.spaces.Box) and len(s.shape) == VECTOR_RANK]
    if len(parts) != 2 or len(images) != 1 or len(vectors) != 1:
        described = ", ".join(f"{k}: {getattr(s, 'shape', s)}" for k, s in parts.items())
        raise ConfigError(f"a Dict observation ({described}) cannot be encoded: the Dict policy takes exactly one "
                          "image Box (height, width, channels) and one vector Box (n,), as types both and deepracer_evo give")
    return DictLayout(images[0], vectors[0])


def is_dict_observation(space: gym.Space) -> bool:
    """True when RLlib needs this module's catalog for `space` (a Dict); a Box keeps RLlib's default module."""
    return isinstance(space, gym.spaces.Dict)


@dataclass
class ImageVectorEncoderConfig(ModelConfig):
    """RLlib's CNN encoder config for the image key and its MLP encoder config for the vector key, concatenated."""

    image_key: str = "camera"
    vector_key: str = "vlidar"
    image_config: ModelConfig | None = None
    vector_config: ModelConfig | None = None
    scale_uint8: bool = True  # the image arrives as uint8 0..255: the encoder divides by 255

    @property
    def output_dims(self) -> tuple[int, ...]:
        return (int(self.image_config.output_dims[0]) + int(self.vector_config.output_dims[0]),)

    def build(self, framework: str = "torch") -> "TorchImageVectorEncoder":
        if framework != "torch":
            raise ValueError(f"the Dict encoder is built for torch only, not {framework}")
        return TorchImageVectorEncoder(self)


class TorchImageVectorEncoder(TorchModel, Encoder):
    """{obs: {image_key: (B, H, W, C), vector_key: (B, n)}} -> {encoder_out: (B, cnn_out + mlp_out)}."""

    def __init__(self, config: ImageVectorEncoderConfig) -> None:
        TorchModel.__init__(self, config)
        Encoder.__init__(self, config)
        self.image_key, self.vector_key = config.image_key, config.vector_key
        self.scale_uint8 = config.scale_uint8
        self.image_encoder = config.image_config.build(framework="torch")
        self.vector_encoder = config.vector_config.build(framework="torch")

    def _forward(self, inputs: dict, **kwargs: Any) -> dict:
        import torch

        obs = inputs[Columns.OBS]
        image = obs[self.image_key]
        if image.dtype == torch.uint8:
            image = image.to(torch.float32) / UINT8_MAX if self.scale_uint8 else image.to(torch.float32)
        vector = obs[self.vector_key].to(torch.float32)
        image_out = self.image_encoder({Columns.OBS: image})[ENCODER_OUT]
        vector_out = self.vector_encoder({Columns.OBS: vector})[ENCODER_OUT]
        return {ENCODER_OUT: torch.cat([image_out, vector_out], dim=-1)}


class DictPPOCatalog(PPOCatalog):
    """PPOCatalog whose encoder takes the image + vector Dict; a Box goes to RLlib's own choice unchanged."""

    @classmethod
    def _get_encoder_config(cls, observation_space: gym.Space, model_config_dict: dict,
                            action_space: gym.Space = None) -> ModelConfig:
        if not is_dict_observation(observation_space):
            return super()._get_encoder_config(observation_space, model_config_dict, action_space)
        if model_config_dict.get("use_lstm"):
            raise ConfigError("model_config.use_lstm cannot be combined with a Dict observation (camera + lidar): "
                              "the Dict policy has no recurrent encoder; use frame_stack on the camera instead")
        layout = dict_layout(observation_space)
        image_space = observation_space[layout.image_key]
        image_config = super()._get_encoder_config(image_space, model_config_dict, action_space)
        return ImageVectorEncoderConfig(
            image_key=layout.image_key, vector_key=layout.vector_key, image_config=image_config,
            vector_config=super()._get_encoder_config(observation_space[layout.vector_key], model_config_dict, action_space),
            scale_uint8=image_space.dtype == np.uint8)
