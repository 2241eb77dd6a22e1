"""User file paths in a config, made absolute once against the launch directory.

Tune runs each trial (and RLlib its env runners) in another working directory, so a relative
path that passed validation in the driver would name a different file there. Every path a user
writes (in the config file or with --set) is therefore resolved against the directory the command
was started in, and the resolved config (`config.yaml`, the trial) holds only absolute paths.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REWARD_FILE_SUFFIX = ".py"
TRACK_FILE_SUFFIX = ".npy"
OPENDRIVE_SUFFIX = ".xodr"


def absolute_path(text: str, launch_dir: Path) -> str:
    """`text` as an absolute path (`~` expanded; a relative path is taken from `launch_dir`)."""
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (launch_dir / path).absolute())


def _is_file_spec(value: Any, suffix: str) -> bool:
    """True for a string naming a file of this kind (by its suffix), not a built-in name."""
    return isinstance(value, str) and Path(value).suffix == suffix


def _track_spec(value: Any, launch_dir: Path) -> Any:
    """A track name stays; a .npy path (alone or in a list) becomes absolute."""
    if isinstance(value, list):
        return [_track_spec(item, launch_dir) for item in value]
    return absolute_path(value, launch_dir) if _is_file_spec(value, TRACK_FILE_SUFFIX) else value


def _carla_section(carla: Mapping[str, Any], launch_dir: Path) -> dict[str, Any]:
    """carla.track_file, carla.save_track and a carla.map that is an OpenDRIVE file, made absolute."""
    out = dict(carla)
    for key in ("track_file", "save_track"):
        if isinstance(out.get(key), str) and out[key]:
            out[key] = absolute_path(out[key], launch_dir)
    if _is_file_spec(out.get("map"), OPENDRIVE_SUFFIX):
        out["map"] = absolute_path(out["map"], launch_dir)
    return out


def resolve_env_config_paths(env_config: Mapping[str, Any], launch_dir: Path | None = None) -> dict[str, Any]:
    """Copy of an env_config with every user file path absolute (reward .py, track .npy, carla files)."""
    launch_dir = Path.cwd() if launch_dir is None else Path(launch_dir)
    out = copy.deepcopy(dict(env_config))
    if _is_file_spec(out.get("reward"), REWARD_FILE_SUFFIX):
        out["reward"] = absolute_path(out["reward"], launch_dir)
    if "track" in out:
        out["track"] = _track_spec(out["track"], launch_dir)
    if isinstance(out.get("carla"), Mapping):
        out["carla"] = _carla_section(out["carla"], launch_dir)
    return out
