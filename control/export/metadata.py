"""What travels with model.onnx: DeepRacer's model_metadata.json and the observation layout of export_info.json."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from control.export.graph import CommandMapping

DEEPRACER_METADATA_VERSION = "5"  # the newest model_metadata.json version the DeepRacer console writes
TRAINING_ALGORITHM = "clipped_ppo"  # DeepRacer's name for PPO with a clipped objective (RLlib's PPO)
CAMERA_SENSOR = "FRONT_FACING_CAMERA"
LIDAR_SENSOR = "LIDAR"
# DeepRacer's network presets: 3 conv layers (SHALLOW) or 5 (DEEP_CONVOLUTIONAL_NETWORK).
SHALLOW_NETWORK = "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW"
DEEP_NETWORK = "DEEP_CONVOLUTIONAL_NETWORK"


def _round(value: float) -> float:
    return float(round(float(value), 6))


def deepracer_action_space(mapping: CommandMapping) -> tuple[Any, str]:
    """(action_space, action_space_type) in model_metadata.json form, from the env's own mapping and the car's limits."""
    steering = np.clip(mapping.steering_deg, -mapping.max_steering_deg, mapping.max_steering_deg)
    speed = np.clip(mapping.speed_mps, 0.0, mapping.max_speed_mps)
    if mapping.kind == "continuous":
        return ({"steering_angle": {"high": _round(steering[1]), "low": _round(steering[0])},
                 "speed": {"high": _round(speed[1]), "low": _round(speed[0])}}, "continuous")
    return ([{"steering_angle": _round(s), "speed": _round(v), "index": i}
             for i, (s, v) in enumerate(zip(steering.tolist(), speed.tolist(), strict=True))], "discrete")


def observation_kind(observation_type: Any) -> str:
    """'vlidar', 'camera' or 'both': which of the env's observation types this is."""
    from control.env.observations import CameraObservation, CombinedObservation, VirtualLidarObservation

    for kind, cls in (("both", CombinedObservation), ("camera", CameraObservation), ("vlidar", VirtualLidarObservation)):
        if isinstance(observation_type, cls):
            return kind
    raise ValueError(f"observation type {type(observation_type).__name__} has no export layout")


def deepracer_sensors(kind: str) -> list[str]:
    """DeepRacer sensor names of an observation kind (the virtual lidar is listed as LIDAR: it measures ranges)."""
    return {"camera": [CAMERA_SENSOR], "vlidar": [LIDAR_SENSOR], "both": [CAMERA_SENSOR, LIDAR_SENSOR]}[kind]


def deepracer_network(model_config: Mapping[str, Any], kind: str) -> str:
    """The DeepRacer preset closest to the network: up to 3 conv layers (or none, a lidar MLP) is SHALLOW, more is DEEP."""
    if kind == "vlidar":
        return SHALLOW_NETWORK  # no camera: DeepRacer has no MLP preset; export_info.json describes the real one
    filters = model_config.get("conv_filters") or []
    return SHALLOW_NETWORK if len(filters) <= 3 else DEEP_NETWORK


def model_metadata(mapping: CommandMapping, kind: str, model_config: Mapping[str, Any]) -> dict[str, Any]:
    """DeepRacer's model_metadata.json: action space and type, sensors, network preset, algorithm, version."""
    action_space, action_space_type = deepracer_action_space(mapping)
    return {
        "action_space": action_space,
        "sensor": deepracer_sensors(kind),
        "neural_network": deepracer_network(model_config, kind),
        "training_algorithm": TRAINING_ALGORITHM,
        "action_space_type": action_space_type,
        "version": DEEPRACER_METADATA_VERSION,
    }


def observation_layout(observation_type: Any, limits: Any) -> dict[str, Any]:
    """What each number of the observation is: ray angles and range, or camera size, channels, frame stack, scaling."""
    cfg = observation_type.config
    kind = observation_kind(observation_type)
    if kind == "vlidar":
        angles_deg = np.degrees(observation_type.angles_rad)
        layout: dict[str, Any] = {
            "type": "vlidar",
            "rays": len(angles_deg),
            "ray_angles_deg": [_round(a) for a in angles_deg],  # relative to the heading, left positive
            "max_range_m": float(observation_type.max_range_m),
            "ray_value": "distance to the nearest track border / max_range_m, capped at 1",
            "ego_features": bool(cfg["ego_features"]),
        }
        if cfg["ego_features"]:
            layout["ego_feature_values"] = [f"speed_mps / {limits.max_speed_mps:g}, capped at 1",
                                            f"steering_deg / {limits.max_steering_deg:g}, in [-1, 1]"]
        return layout
    if kind == "camera":
        channels = int(observation_type.channels)
        return {
            "type": "camera",
            "width_px": int(cfg["width_px"]), "height_px": int(cfg["height_px"]),
            "channels_per_frame": channels, "color": "rgb" if cfg["rgb"] else "gray",
            "frame_stack": int(cfg["frame_stack"]),
            "axes": "(batch, height, width, channels_per_frame * frame_stack), oldest frame first on the channel axis",
            "pixel_value": "float32 pixel / 255 in [0, 1]" if cfg["normalize"] else "uint8 pixel 0..255",
            "first_frame": "a new episode starts with its first frame repeated frame_stack times",
        }
    raise ValueError(f"observation type {kind!r} has no export layout")
