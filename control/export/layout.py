"""Names and layout of the exported graph, shared by the exporter (torch) and the ONNX rollout (onnxruntime only)."""
from __future__ import annotations

EXPORT_DIRNAME = "export"  # results/<NAME>/export/
MODEL_FILENAME = "model.onnx"
INFO_FILENAME = "export_info.json"
METADATA_FILENAME = "model_metadata.json"  # DeepRacer's
OPSET = 18  # ONNX opset of model.onnx: onnxruntime >= 1.14 and OpenVINO >= 2023.0 read it
INPUT_NAME = "obs"  # (batch, *observation shape), the env's observation as it emits it
ACTION_OUTPUT = "action"  # continuous: (batch, 2) float32 in [-1, 1]; discrete: (batch,) int64 index
STEERING_OUTPUT = "steering_deg"  # (batch,) float32, the car's steering command, degrees (negative = right)
SPEED_OUTPUT = "speed_mps"  # (batch,) float32, the car's target speed, m/s
OUTPUT_NAMES = (ACTION_OUTPUT, STEERING_OUTPUT, SPEED_OUTPUT)
INFO_FORMAT_VERSION = 1
