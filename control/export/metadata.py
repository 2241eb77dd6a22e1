"""What travels with model.onnx: DeepRacer's model_metadata.json and the observation layout of export_info.json."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from control.export.graph import CommandMapping, ExportError

DEEPRACER_METADATA_VERSION = "5"  # the newest model_metadata.json version the DeepRacer console writes
TRAINING_ALGORITHM = "clipped_ppo"  # DeepRacer's name for PPO with a clipped objective (RLlib's PPO)
# DeepRacer's sensor names (model_metadata.json "sensor"): aws-deepracer-community/deepracer-simapp,
# bundle/markov/architecture/constants.py `class Input`. Its parser (bundle/markov/boto/s3/files/model_metadata.py)
# wants exactly one camera sensor and at most one lidar sensor, and reads DISCRETIZED_SECTOR_LIDAR's settings
# from "lidar_config" {num_sectors, num_values_per_sector, clipping_dist}.
CAMERA_SENSOR = "FRONT_FACING_CAMERA"
STEREO_SENSOR = "STEREO_CAMERAS"
LIDAR_SENSOR = "LIDAR"
LIDAR_MODE_SENSORS = {"raw": LIDAR_SENSOR, "sectors": "SECTOR_LIDAR", "discretized": "DISCRETIZED_SECTOR_LIDAR"}
# DeepRacer's network presets: 3 conv layers (SHALLOW) or 5 (DEEP_CONVOLUTIONAL_NETWORK).
SHALLOW_NETWORK = "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW"
DEEP_NETWORK = "DEEP_CONVOLUTIONAL_NETWORK"
CAMERA_KINDS = ("camera", "stereo_camera")  # a Box image
LIDAR_KINDS = ("vlidar", "deepracer_lidar")  # a Box vector
DICT_KINDS = ("both", "deepracer_evo")  # a Dict of an image and a vector


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
    """The env's name of an observation type (its `type:` key): vlidar, camera, stereo_camera, deepracer_lidar, both, ..."""
    from control.env.observations import OBSERVATION_TYPES

    names = {cls: name for name, cls in OBSERVATION_TYPES.items()}
    for cls in type(observation_type).__mro__:  # the nearest registered class: a subclass exports as its parent
        if cls in names:
            return names[cls]
    raise ExportError(f"observation type {type(observation_type).__name__} is not one of the env's types "
                      f"({', '.join(names.values())}); expected a type from env_config.observation.type")


def _camera_sensor(camera: Any) -> str:
    from control.env.observations import StereoCameraObservation

    return STEREO_SENSOR if isinstance(camera, StereoCameraObservation) else CAMERA_SENSOR


def deepracer_sensors(observation_type: Any) -> list[str]:
    """DeepRacer's sensor names for an observation type (the virtual lidar is listed as LIDAR: it measures ranges)."""
    kind = observation_kind(observation_type)
    if kind in CAMERA_KINDS:
        return [_camera_sensor(observation_type)]
    if kind == "vlidar":
        return [LIDAR_SENSOR]
    if kind == "deepracer_lidar":
        return [LIDAR_MODE_SENSORS[observation_type.mode]]
    if kind == "deepracer_evo":
        return [_camera_sensor(observation_type.camera), LIDAR_MODE_SENSORS[observation_type.lidar.mode]]
    return [CAMERA_SENSOR, LIDAR_SENSOR]  # both: the front camera and the virtual lidar


def deepracer_lidar_config(observation_type: Any) -> dict[str, Any] | None:
    """model_metadata.json's lidar_config for DISCRETIZED_SECTOR_LIDAR (DeepRacer reads its bins from there), else None."""
    lidar = observation_type.lidar if observation_kind(observation_type) == "deepracer_evo" else observation_type
    if observation_kind(lidar) != "deepracer_lidar" or lidar.mode != "discretized":
        return None
    cfg = lidar.config
    return {"num_sectors": int(cfg["num_sectors"]), "num_values_per_sector": int(cfg["num_values_per_sector"]),
            "clipping_dist": float(cfg["sector_clipping_dist_m"])}


def deepracer_network(model_config: Mapping[str, Any], kind: str) -> str:
    """The DeepRacer preset closest to the network: up to 3 conv layers (or none, a lidar MLP) is SHALLOW, more is DEEP."""
    if kind in LIDAR_KINDS:
        return SHALLOW_NETWORK  # no camera: DeepRacer has no MLP preset; export_info.json describes the real one
    filters = model_config.get("conv_filters") or []
    return SHALLOW_NETWORK if len(filters) <= 3 else DEEP_NETWORK


def model_metadata(mapping: CommandMapping, observation_type: Any, model_config: Mapping[str, Any]) -> dict[str, Any]:
    """DeepRacer's model_metadata.json: action space and type, sensors (and lidar_config), network preset, algorithm, version."""
    action_space, action_space_type = deepracer_action_space(mapping)
    metadata = {
        "action_space": action_space,
        "sensor": deepracer_sensors(observation_type),
        "neural_network": deepracer_network(model_config, observation_kind(observation_type)),
        "training_algorithm": TRAINING_ALGORITHM,
        "action_space_type": action_space_type,
        "version": DEEPRACER_METADATA_VERSION,
    }
    lidar_config = deepracer_lidar_config(observation_type)
    if lidar_config is not None:
        metadata["lidar_config"] = lidar_config
    return metadata


def _ego_feature_values(limits: Any) -> list[str]:
    return [f"speed_mps / {limits.max_speed_mps:g}, capped at 1", f"steering_deg / {limits.max_steering_deg:g}, in [-1, 1]"]


def _vlidar_layout(observation_type: Any, limits: Any) -> dict[str, Any]:
    cfg = observation_type.config
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
        layout["ego_feature_values"] = _ego_feature_values(limits)
    return layout


def _deepracer_lidar_layout(observation_type: Any, limits: Any) -> dict[str, Any]:
    cfg = observation_type.config
    angles_deg = np.degrees(observation_type.angles_rad)
    mode = observation_type.mode
    layout: dict[str, Any] = {
        "type": "deepracer_lidar",
        "mode": mode,
        "deepracer_sensor": LIDAR_MODE_SENSORS[mode],
        "samples": len(angles_deg),
        "sample_angles_deg": [_round(a) for a in angles_deg],  # relative to the heading, left positive: right first
        "min_range_m": float(cfg["min_range_m"]),
        "noise_stddev_m": float(cfg["noise_stddev_m"]),
    }
    if mode == "raw":
        layout["clipping_dist_m"] = float(cfg["clipping_dist_m"])
        layout["value"] = "range to the nearest border or race object, m, clipped to [min_range_m, clipping_dist_m]"
    else:
        sectors = int(cfg["num_sectors"])
        layout.update({"sectors": sectors, "samples_per_sector": len(angles_deg) // sectors,
                       "sector_clipping_dist_m": float(cfg["sector_clipping_dist_m"])})
        if mode == "sectors":
            layout["value"] = "per sector (consecutive samples, right first): 1.0 when its nearest range < sector_clipping_dist_m, else 0.0"
        else:
            values = int(cfg["num_values_per_sector"])
            layout["num_values_per_sector"] = values
            layout["value"] = (f"per sector (right first) {values} one-hot bins: bin floor(nearest range / (sector_clipping_dist_m / "
                               f"{values})); all zeros when nothing is nearer than sector_clipping_dist_m")
    layout["ego_features"] = bool(cfg["ego_features"])
    if cfg["ego_features"]:
        layout["ego_feature_values"] = _ego_feature_values(limits)
    return layout


def _camera_layout(observation_type: Any) -> dict[str, Any]:
    cfg = observation_type.config
    channels = int(observation_type.channels)
    layout: dict[str, Any] = {
        "type": "camera",
        "width_px": int(cfg["width_px"]), "height_px": int(cfg["height_px"]),
        "channels_per_frame": channels, "color": "rgb" if cfg["rgb"] else "gray",
        "frame_stack": int(cfg["frame_stack"]),
        "axes": "(batch, height, width, channels_per_frame * frame_stack), oldest frame first on the channel axis",
        "pixel_value": "float32 pixel / 255 in [0, 1]" if cfg["normalize"] else "uint8 pixel 0..255",
        "first_frame": "a new episode starts with its first frame repeated frame_stack times",
    }
    if observation_kind(observation_type) == "stereo_camera":
        layout.update({
            "type": "stereo_camera",
            "cameras": ["left", "right"],
            "baseline_m": float(cfg["baseline_m"]),
            "axes": ("(batch, height, width, channels_per_frame * frame_stack), oldest frame first on the channel axis; "
                     "within a frame the left camera's channels, then the right camera's"),
        })
    return layout


def observation_layout(observation_type: Any, limits: Any) -> dict[str, Any]:
    """What each number of the observation is: ray angles and range, lidar mode and bins, or camera size, channels, scaling."""
    kind = observation_kind(observation_type)
    if kind == "vlidar":
        return _vlidar_layout(observation_type, limits)
    if kind == "deepracer_lidar":
        return _deepracer_lidar_layout(observation_type, limits)
    if kind in CAMERA_KINDS:
        return _camera_layout(observation_type)
    # A Dict: one layout per key, as the env names them.
    ray_key, rays = ("lidar", observation_type.lidar) if kind == "deepracer_evo" else ("vlidar", observation_type.vlidar)
    return {"type": kind, "keys": {"camera": _camera_layout(observation_type.camera),
                                   ray_key: observation_layout(rays, limits)}}
