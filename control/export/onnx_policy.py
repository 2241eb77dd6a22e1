"""An exported model.onnx as a rollout policy: onnxruntime alone (no torch, no Ray), deterministic actions."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from control.errors import CheckpointError
from control.export.layout import ACTION_OUTPUT, INFO_FILENAME, INPUT_NAME
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
        (model_input,) = self.info["inputs"]
        self.input_shape = tuple(int(d) for d in model_input["shape"][1:])
        self.input_dtype = np.dtype(model_input["dtype"])
        self.action_kind = self.info["action"]["type"]
        self.run_config = RunConfig(env=self.info["env"], env_config=dict(self.info["env_config"]),
                                    observation_filter=self.info["observation_filter"]["type"],
                                    source=str(model_path.parent / INFO_FILENAME))

    def check_env(self, env: Any, env_name: str) -> None:
        """CheckpointError naming both sides when the env's spaces do not fit the exported graph."""
        space = env.observation_space
        if not isinstance(space, gym.spaces.Box) or space.shape != self.input_shape or space.dtype != self.input_dtype:
            raise CheckpointError(f"{self.model_path.name} expects observations of shape {self.input_shape} "
                                  f"{self.input_dtype} but the env ({env_name}) has {describe_space(space)}; "
                                  "roll out with the env settings it was exported with")
        actions = env.action_space
        fits = (isinstance(actions, gym.spaces.Discrete) and self.action_kind == "discrete"
                and int(actions.n) == len(self.info["action"]["actions"])) or (
                isinstance(actions, gym.spaces.Box) and self.action_kind == "continuous" and actions.shape == (2,))
        if not fits:
            raise CheckpointError(f"{self.model_path.name} acts in a {self.action_kind} action space but the env "
                                  f"({env_name}) has {describe_space(actions)}")

    def compute_action(self, obs: Any) -> Any:
        """The env action for one observation (deterministic: the graph holds no sampling)."""
        batch = np.asarray(obs, dtype=self.input_dtype)[None]
        action = self.session.run([ACTION_OUTPUT], {INPUT_NAME: batch})[0][0]
        return int(action) if self.action_kind == "discrete" else action
