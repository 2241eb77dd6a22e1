"""An exported model.onnx as a rollout policy: onnxruntime alone (no torch, no Ray), deterministic actions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from control.errors import CheckpointError
from control.export.layout import ACTION_OUTPUT, INFO_FILENAME, onnx_feeds
from control.rollout.inference import RunConfig, describe_space


def load_export_info(model_path: Path) -> dict[str, Any]:
    """export_info.json beside a model.onnx (what the env and the graph's interface are)."""
    info_path = model_path.parent / INFO_FILENAME
    if not info_path.is_file():
        raise CheckpointError(f"no {INFO_FILENAME} beside {model_path}; expected the folder written by "
                              "python -m control.export (make export NAME=...)")
    return json.loads(info_path.read_text())


class OnnxPolicy:
    """model.onnx on onnxruntime (one thread): observation in, env action out, like inference.Policy."""

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        model_path = Path(model_path).expanduser().resolve()
        if not model_path.is_file():
            raise CheckpointError(f"ONNX model '{model_path}' does not exist; expected results/<NAME>/export/model.onnx "
                                  "written by python -m control.export")
        self.model_path = model_path
        self.info = load_export_info(model_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1  # one observation per call: more threads only contend (as for torch)
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a broken file
            raise CheckpointError(f"cannot load ONNX model {model_path}: {' '.join(str(exc).split())[:300]}") from None
        # One input `obs` for a Box observation, one per key (camera, lidar, ...) for a Dict.
        self.inputs = {i["name"]: (tuple(int(d) for d in i["shape"][1:]), np.dtype(i["dtype"])) for i in self.info["inputs"]}
        self.action_kind = self.info["action"]["type"]
        self.run_config = RunConfig(env=self.info["env"], env_config=dict(self.info["env_config"]),
                                    observation_filter=self.info["observation_filter"]["type"],
                                    source=str(model_path.parent / INFO_FILENAME))

    def check_env(self, env: Any, env_name: str) -> None:
        """CheckpointError naming both sides when the env's spaces do not fit the exported graph."""
        space = env.observation_space
        parts = space.spaces if isinstance(space, gym.spaces.Dict) else {next(iter(self.inputs)): space}
        fits = parts.keys() == self.inputs.keys() and all(
            isinstance(part, gym.spaces.Box) and (part.shape, part.dtype) == self.inputs[k] for k, part in parts.items())
        if not fits:
            expected = ", ".join(f"{k}: {shape} {dtype}" for k, (shape, dtype) in self.inputs.items())
            raise CheckpointError(f"{self.model_path.name} expects observations {expected} but the env ({env_name}) "
                                  f"has {describe_space(space)}; roll out with the env settings it was exported with")
        actions = env.action_space
        fits = (isinstance(actions, gym.spaces.Discrete) and self.action_kind == "discrete"
                and int(actions.n) == len(self.info["action"]["actions"])) or (
                isinstance(actions, gym.spaces.Box) and self.action_kind == "continuous" and actions.shape == (2,))
        if not fits:
            raise CheckpointError(f"{self.model_path.name} acts in a {self.action_kind} action space but the env "
                                  f"({env_name}) has {describe_space(actions)}")

    def compute_action(self, obs: Any) -> Any:
        """The env action for one observation (deterministic: the graph holds no sampling)."""
        feeds = onnx_feeds(obs, list(self.inputs))
        batch = {name: np.asarray(value, dtype=self.inputs[name][1])[None] for name, value in feeds.items()}
        action = self.session.run([ACTION_OUTPUT], batch)[0][0]
        return int(action) if self.action_kind == "discrete" else action
