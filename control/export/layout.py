"""Names and layout of the exported graph, shared by the exporter (torch) and the ONNX rollout (onnxruntime only)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

EXPORT_DIRNAME = "export"  # results/<NAME>/export/
MODEL_FILENAME = "model.onnx"
INFO_FILENAME = "export_info.json"
METADATA_FILENAME = "model_metadata.json"  # DeepRacer's
OPSET = 18  # ONNX opset of model.onnx: onnxruntime >= 1.14 and OpenVINO >= 2023.0 read it
INPUT_NAME = "obs"  # (batch, *observation shape), the env's observation as it emits it (a Box observation)
# A Dict observation (types both, deepracer_evo) is one input per key, named as the env's keys: camera, vlidar / lidar.
ACTION_OUTPUT = "action"  # continuous: (batch, 2) float32 in [-1, 1]; discrete: (batch,) int64 index
STEERING_OUTPUT = "steering_deg"  # (batch,) float32, the car's steering command, degrees (negative = right)
SPEED_OUTPUT = "speed_mps"  # (batch,) float32, the car's target speed, m/s
OUTPUT_NAMES = (ACTION_OUTPUT, STEERING_OUTPUT, SPEED_OUTPUT)
INFO_FORMAT_VERSION = 1


def onnx_feeds(observation: Any, input_names: list[str]) -> dict[str, Any]:
    """The graph's inputs from an observation (batched or not): the Box as `obs`, or each Dict key as its own input."""
    if isinstance(observation, Mapping):
        return {name: observation[name] for name in input_names}
    return {INPUT_NAME: observation}
