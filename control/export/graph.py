"""The exported graph as a torch module: env observation -> MeanStdFilter -> RLModule -> deterministic action -> command.

It is what `Policy.compute_action` (control/rollout/inference.py) does for one observation, batched, with the
env's action mapping (control/env/actions.py) and the backend's car limits (VehicleLimits) appended, so the ONNX
file alone turns an observation into the steering angle and speed the car is given. A Dict observation (camera +
lidar) enters as one input per key, and has no MeanStdFilter.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from control.errors import UserError
from control.export.layout import INPUT_NAME, OPSET, OUTPUT_NAMES
from control.rollout.inference import FilterStatistics
from control.sim.base import VehicleLimits


class ExportError(UserError):
    """A policy that cannot be exported, or an export whose outputs differ from the torch module's."""


@dataclass(frozen=True)
class CommandMapping:
    """The env's action -> (steering_deg, speed_mps) of the car, as numbers the graph holds.

    continuous: value = low + (clip(a, -1, 1) + 1) / 2 * (high - low) per component (ContinuousAction);
    discrete: table rows by index (DiscreteAction). Then clipped to the car's envelope (VehicleLimits), as the
    backend does before it drives.
    """

    kind: str  # "continuous" | "discrete"
    steering_deg: np.ndarray  # continuous: [low, high]; discrete: one per action
    speed_mps: np.ndarray
    max_steering_deg: float  # the car's steering lock, either side
    max_speed_mps: float  # the car's top speed (no reverse gear: speed >= 0)


def command_mapping(action_type: Any, action_space: gym.Space, limits: VehicleLimits) -> CommandMapping:
    """The mapping the env's own action type applies, read back through its `to_commands` (no second copy)."""
    if isinstance(action_space, gym.spaces.Discrete):
        steering, speed, _ = action_type.to_commands(np.arange(int(action_space.n)))
        kind = "discrete"
    elif isinstance(action_space, gym.spaces.Box) and action_space.shape == (2,):
        steering, speed, _ = action_type.to_commands(np.array([[-1.0, -1.0], [1.0, 1.0]]))  # the linear map's ends
        kind = "continuous"
    else:
        raise ExportError(f"action space {action_space} cannot be exported; expected the continuous Box(2,) or a "
                          "discrete action list (env_config.action.type)")
    return CommandMapping(kind, np.asarray(steering, np.float64), np.asarray(speed, np.float64),
                          float(limits.max_steering_deg), float(limits.max_speed_mps))


def _deterministic_kind(dist_cls: type) -> str:
    """'gaussian' (the mean) or 'categorical' (the argmax): what `to_deterministic()` gives for the module's dist."""
    from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchDiagGaussian

    if issubclass(dist_cls, TorchDiagGaussian):
        return "gaussian"
    if issubclass(dist_cls, TorchCategorical):
        return "categorical"
    raise ExportError(f"the policy's action distribution {dist_cls.__name__} cannot be exported; expected "
                      "RLlib's TorchDiagGaussian (continuous) or TorchCategorical (discrete)")


class PolicyGraph(torch.nn.Module):
    """obs (batch, *shape) as the env emits it -> (action, steering_deg, speed_mps).

    A Dict policy (`dict_keys`: the env's keys, in order) takes one tensor per key instead of `obs`.
    """

    def __init__(self, module: Any, dist_cls: type, action_space: gym.Space, mapping: CommandMapping,
                 filter_stats: FilterStatistics | None, dict_keys: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.module = module
        self.dict_keys = tuple(dict_keys)
        if self.dict_keys and filter_stats is not None:
            raise ExportError("a Dict observation's MeanStdFilter cannot be exported; train the Dict policy with "
                              "observation_filter: NoFilter")
        self.deterministic = _deterministic_kind(dist_cls)
        self.kind = mapping.kind
        self.has_filter = filter_stats is not None
        if filter_stats is not None:
            # As RLlib's numpy filter computes it: float64 mean, float32 (std + epsilon), float64 arithmetic,
            # float32 result; the same dtypes here keep the graph within float32 rounding of the rollout.
            mean = np.asarray(filter_stats.mean, np.float64) if filter_stats.demean else np.zeros(filter_stats.mean.shape)
            denom = (np.asarray(filter_stats.std) + filter_stats.epsilon) if filter_stats.destd else np.ones(mean.shape)
            self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float64))
            self.register_buffer("obs_denom", torch.as_tensor(np.asarray(denom, np.float64), dtype=torch.float64))
            self.clip = filter_stats.clip
        if isinstance(action_space, gym.spaces.Box):
            self.action_dim = int(action_space.shape[0])
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32))
        self.register_buffer("steering_deg", torch.as_tensor(mapping.steering_deg, dtype=torch.float32))
        self.register_buffer("speed_mps", torch.as_tensor(mapping.speed_mps, dtype=torch.float32))
        self.max_steering_deg = mapping.max_steering_deg
        self.max_speed_mps = mapping.max_speed_mps

    def _normalised(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.has_filter:
            return obs.to(torch.float32)
        x = (obs.to(torch.float64) - self.obs_mean) / self.obs_denom
        if self.clip:
            x = torch.clamp(x, -self.clip, self.clip)
        return x.to(torch.float32)

    def _dist_inputs(self, x: torch.Tensor) -> torch.Tensor:
        from ray.rllib.core.models.base import ENCODER_OUT

        encoder = self.module.encoder
        if hasattr(encoder, "actor_encoder"):  # separate actor and critic: acting needs no value network
            return self.module.pi(encoder.actor_encoder({"obs": x})[ENCODER_OUT])
        return self.module.forward_inference({"obs": x})["action_dist_inputs"]

    def forward(self, *obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.dict_keys:  # the Dict's parts as the env emits them: the module's encoder casts and scales them
            logits = self._dist_inputs(dict(zip(self.dict_keys, obs, strict=True)))
        else:
            logits = self._dist_inputs(self._normalised(obs[0]))
        if self.deterministic == "gaussian":
            action = torch.clamp(logits[..., : self.action_dim], self.action_low, self.action_high)  # the mean
        else:
            action = torch.argmax(logits, dim=-1)
        if self.kind == "continuous":
            a = (torch.clamp(action, -1.0, 1.0) + 1.0) * 0.5
            steering = self.steering_deg[0] + a[..., 0] * (self.steering_deg[1] - self.steering_deg[0])
            speed = self.speed_mps[0] + a[..., 1] * (self.speed_mps[1] - self.speed_mps[0])
        else:
            steering, speed = self.steering_deg[action], self.speed_mps[action]
        steering = torch.clamp(steering, -self.max_steering_deg, self.max_steering_deg)
        speed = torch.clamp(speed, 0.0, self.max_speed_mps)
        return action, steering, speed


def stack_observations(observations: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
    """A batch from single observations: one array for a Box, one array per key for a Dict."""
    if observations and isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack(observations)


def example_batch(observation_space: gym.Space, seed: int = 0) -> np.ndarray | dict[str, np.ndarray]:
    """Two sample observations: the batch axis must be > 1 or torch.export fixes it to 1."""
    observation_space.seed(seed)
    return stack_observations([observation_space.sample() for _ in range(2)])


def export_onnx(graph: PolicyGraph, example_obs: np.ndarray | dict[str, np.ndarray], path: Path,
                opset: int = OPSET) -> None:
    """Write `graph` as ONNX (torch.export-based exporter, dynamic batch axis) and check it with onnx.checker.

    A Box observation is the input `obs`; a Dict's parts are one input each, named by the graph's `dict_keys`.
    """
    import onnx

    graph.eval()
    batch = torch.export.Dim("batch", min=1)
    names = list(graph.dict_keys) or [INPUT_NAME]
    examples = tuple(torch.as_tensor(example_obs[k]) for k in graph.dict_keys) or (torch.as_tensor(example_obs),)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        try:
            program = torch.onnx.export(graph, examples, dynamo=True, opset_version=opset,
                                        input_names=names, output_names=list(OUTPUT_NAMES),
                                        # forward(*obs): one var-positional argument holding every input
                                        dynamic_shapes=(tuple({0: batch} for _ in names),), verbose=False)
        except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds; one line says which
            raise ExportError(f"torch.onnx.export failed for this policy: {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:300]}") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
