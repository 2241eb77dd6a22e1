"""Checkpoint -> results/<NAME>/export/: model.onnx, model_metadata.json (DeepRacer's), export_info.json."""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from control.export import layout as L
from control.export.graph import ExportError, PolicyGraph, command_mapping, example_batch, export_onnx
from control.export.metadata import DICT_KINDS, model_metadata, observation_kind, observation_layout
from control.export.verify import compare, record_observations
from control.rollout import inference


@dataclass
class ExportResult:
    """Where the files went and the check's figures."""

    out_dir: Path
    model_path: Path
    info: dict[str, Any]


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import ray
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "ray": ray.__version__}


def _graph_inputs(observation_space: gym.Space) -> list[dict[str, Any]]:
    """The inputs of model.onnx: `obs` for a Box, one per key (the env's names) for a Dict."""
    if isinstance(observation_space, gym.spaces.Dict):
        return [{"name": key, "shape": ["batch", *map(int, part.shape)], "dtype": str(np.dtype(part.dtype)),
                 "meaning": f"the observation's '{key}' part exactly as the env emits it (see observation.keys)"}
                for key, part in observation_space.spaces.items()]
    return [{"name": L.INPUT_NAME, "shape": ["batch", *map(int, observation_space.shape)],
             "dtype": str(np.dtype(observation_space.dtype)),
             "meaning": "the observation exactly as the env emits it (see observation)"}]


def _graph_io(observation_space: gym.Space, kind: str) -> dict[str, Any]:
    """The documented inputs and outputs of model.onnx."""
    action = ({"name": L.ACTION_OUTPUT, "shape": ["batch", 2], "dtype": "float32",
               "meaning": "the policy's normalised action in [-1, 1]: [steering, speed] (the env's action)"}
              if kind == "continuous" else
              {"name": L.ACTION_OUTPUT, "shape": ["batch"], "dtype": "int64",
               "meaning": "index into model_metadata.json action_space (the env's action)"})
    return {
        "inputs": _graph_inputs(observation_space),
        "outputs": [action,
                    {"name": L.STEERING_OUTPUT, "shape": ["batch"], "dtype": "float32",
                     "meaning": "steering command, degrees, negative = right (DeepRacer's sign)"},
                    {"name": L.SPEED_OUTPUT, "shape": ["batch"], "dtype": "float32", "meaning": "target speed, m/s"}],
    }


def _annotate(model_path: Path, info: dict[str, Any]) -> None:
    """Put the graph's interface into the ONNX file itself (doc string and metadata_props), then check it again."""
    import onnx

    model = onnx.load(str(model_path))
    model.producer_name = "racer control.export"
    inputs = ", ".join(f"'{i['name']}'" for i in info["inputs"])
    model.doc_string = (f"Deterministic racing policy: input {inputs} (the env's observation), outputs 'action' (the "
                        "env's action), 'steering_deg' and 'speed_mps' (the car's command). See export_info.json.")
    props = {"env": info["env"], "observation": json.dumps(info["observation"]),
             "action_space_type": info["action"]["type"], "observation_filter": info["observation_filter"]["type"],
             "opset": str(info["opset"])}
    onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(model_path))


def check_exportable(observation_type: Any, observation_space: gym.Space) -> None:
    """ExportError (one line: the type, why, what would work) unless the graph can take the observation.

    A Box is one input; a Dict of one image and one vector (types both, deepracer_evo: the Dict policy of
    control/training/dict_module.py) is one input per key.
    """
    from control.errors import ConfigError
    from control.training.dict_module import dict_layout

    kind = observation_kind(observation_type)
    if isinstance(observation_space, gym.spaces.Box):
        return
    if kind in DICT_KINDS and isinstance(observation_space, gym.spaces.Dict):
        try:
            dict_layout(observation_space)
            return
        except ConfigError as exc:
            why = str(exc)
    else:
        why = "the graph takes a Box or a Dict of one image and one vector"
    raise ExportError(f"observation type {kind} ({inference.describe_space(observation_space)}) cannot be exported: "
                      f"{why}; export a policy of type camera, stereo_camera, vlidar, deepracer_lidar, both or deepracer_evo")


def default_out_dir(checkpoint: Path) -> Path:
    """results/<NAME>/export/ of the checkpoint's run (an export/ folder beside the checkpoint outside a run)."""
    run_folder = inference.find_run_folder(checkpoint)
    return (run_folder if run_folder is not None else checkpoint.parent) / L.EXPORT_DIRNAME


def export_checkpoint(checkpoint: Path, out_dir: Path | None = None, observations: int = 1000,
                      seed: int = 0) -> ExportResult:
    """Export the checkpoint's deterministic policy to ONNX and check it on `observations` recorded observations."""
    import onnxruntime as ort

    run = inference.load_run_config(checkpoint)
    env = inference.make_env(run, {}, render=False)
    try:
        policy = inference.Policy(checkpoint, explore=False, observation_filter=run.observation_filter)
        policy.check_env(env, run.env)
        check_exportable(env.observation_type, env.observation_space)
        recording = record_observations(env, policy, observations, seed)  # resets the env: its backend exists now
        limits = env.limits
        mapping = command_mapping(env.action_type, env.action_space, limits)
        filter_stats = policy.filter.statistics() if policy.filter is not None else None
        dict_keys = tuple(env.observation_space.spaces) if isinstance(env.observation_space, gym.spaces.Dict) else ()
        graph = PolicyGraph(policy.module, policy.action_dist_cls, policy.action_space, mapping, filter_stats, dict_keys)
        out_dir = (out_dir or default_out_dir(checkpoint)).resolve()
        model_path = out_dir / L.MODEL_FILENAME
        export_onnx(graph, example_batch(env.observation_space, seed), model_path)
        session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        check = compare(session, recording, env.action_type, mapping)
        model_config = _model_config(run)
        info = {
            "format_version": L.INFO_FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "model": L.MODEL_FILENAME,
            "opset": L.OPSET,
            **_graph_io(env.observation_space, mapping.kind),
            "observation": observation_layout(env.observation_type, limits),
            "observation_filter": ({"type": "MeanStdFilter", "inside_graph": True, "observations": filter_stats.count,
                                    "clip": filter_stats.clip} if filter_stats is not None else {"type": "NoFilter"}),
            "action": _action_info(mapping),
            "vehicle_limits": dataclasses.asdict(limits),
            "network": model_config,
            "checkpoint": str(checkpoint),
            "config_source": run.source,
            "env": run.env,
            "env_config": run.env_config,
            "check": check,
            "versions": _versions(),
        }
        (out_dir / L.METADATA_FILENAME).write_text(
            json.dumps(model_metadata(mapping, env.observation_type, model_config), indent=4) + "\n")
        _annotate(model_path, info)
        (out_dir / L.INFO_FILENAME).write_text(json.dumps(info, indent=2, default=_json_default) + "\n")
    finally:
        env.close()
    if not check["passed"]:
        diff = (f"{check['index_mismatches']} different action indices" if mapping.kind == "discrete"
                else f"max action difference {check['max_abs_diff_action']:.3g} > {check['tolerance']:g}")
        raise ExportError(f"the exported model disagrees with the torch policy on {check['observations']} recorded "
                          f"observations ({diff}); the files in {out_dir} are not to be trusted")
    return ExportResult(out_dir, model_path, info)


def _model_config(run: inference.RunConfig) -> dict[str, Any]:
    """The run's model settings (config.yaml's model_config), for the record and the DeepRacer network preset."""
    import yaml

    source = Path(run.source)
    if source.suffix in (".yaml", ".yml") and source.is_file():
        raw = yaml.safe_load(source.read_text()) or {}
        return dict(raw.get("model_config") or raw.get("model") or {})
    return {}


def _action_info(mapping: Any) -> dict[str, Any]:
    if mapping.kind == "continuous":
        return {"type": "continuous", "steering_deg": mapping.steering_deg.tolist(), "speed_mps": mapping.speed_mps.tolist(),
                "mapping": "value = low + (clip(action, -1, 1) + 1) / 2 * (high - low), then the car's limits"}
    return {"type": "discrete", "actions": [{"steering_angle": s, "speed": v, "index": i} for i, (s, v) in
                                            enumerate(zip(mapping.steering_deg.tolist(), mapping.speed_mps.tolist(), strict=True))],
            "mapping": "row `action` of actions, then the car's limits"}


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
