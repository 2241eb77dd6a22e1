"""ONNX export of a trained policy (model.onnx, DeepRacer's model_metadata.json, export_info.json).

Importing this package imports nothing heavy: the exporter needs torch and Ray (`control.export.exporter`),
the exported model needs only onnxruntime (`control.export.onnx_policy`).
"""
