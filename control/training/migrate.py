"""`python -m control.training.migrate OLD.yaml [-o NEW.yaml]`: an older config -> this project's config.

Two kinds of old file: a config for an older RLlib (the names control/training/legacy_keys.py maps), and a
config for the original CARLA racing toolkit this project replaces (env ids such as `carla-racer-minmax`,
env_config sections carla / action / sensor / spawn_* / augmentations ...). Every key is either mapped to
its current place or listed with the reason it was dropped; the report heads the new file as comments, and
the new file is checked by the loader before it is written.
"""
from __future__ import annotations

import argparse
import copy
import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from control.errors import ConfigError, UserError, did_you_mean
from control.training.legacy_keys import (
    IGNORED_KEYS,
    MODEL_IGNORED_KEYS,
    MODEL_RENAMED_KEYS,
    MODEL_UNSUPPORTED_KEYS,
    PROJECT_KEYS,
    RENAMED_KEYS,
    RESTRICTED_KEYS,
)
from control.training.original_toolkit_keys import MIGRATE_COMMAND, ORIGINAL_ENV_IDS, ORIGINAL_ENV_KEYS

RENDER_ONLY = "it sized the original toolkit's bird-eye render; the rollout video has its own fixed layout"
NO_AUGMENTATION = "the original toolkit's training augmentation has no counterpart here (actions and physics are exact)"


@dataclass
class Migration:
    """The new config and the report lines: one per key of the old file."""

    config: dict[str, Any] = field(default_factory=dict)
    mapped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def map(self, old: str, new: str, how: str = "") -> None:
        """Record that `old` became `new`."""
        self.mapped.append(f"{old} -> {new}" + (f" ({how})" if how else ""))

    def drop(self, old: str, why: str) -> None:
        """Record that `old` was dropped, and why."""
        self.dropped.append(f"{old}: {why}")


def is_original_toolkit_config(raw: dict[str, Any]) -> bool:
    """True when `raw` names an original-toolkit env id or holds its env_config sections."""
    env_config = raw.get("env_config") if isinstance(raw.get("env_config"), dict) else {}
    from control.env.config import DEFAULT_ENV_CONFIG

    original = set(ORIGINAL_ENV_KEYS) - set(DEFAULT_ENV_CONFIG)  # keys this project does not have itself
    return raw.get("env") in ORIGINAL_ENV_IDS or bool(original & set(env_config)) or "sensor" in env_config or (
        isinstance(env_config.get("action"), dict) and "discrete" in env_config["action"])


# --------------------------------------------------------------------------- RLlib settings (top level, model)
def _migrate_settings(raw: dict[str, Any], m: Migration) -> None:
    """Top-level AlgorithmConfig keys: renamed, dropped or kept, from legacy_keys' tables."""
    from control.training.config_loader import HANDLED_KEYS, current_setting_names

    current = current_setting_names()
    for key, value in raw.items():
        if key in ("env", "env_config", "model", "model_config"):
            continue
        if key in RESTRICTED_KEYS:
            allowed, right = RESTRICTED_KEYS[key]
            if value in allowed:
                m.config[key] = value
                m.map(key, key, "kept")
            else:
                m.drop(f"{key}: {value}", right)
        elif key in IGNORED_KEYS:
            m.drop(key, IGNORED_KEYS[key])
        elif key in RENAMED_KEYS:
            m.config[RENAMED_KEYS[key]] = value
            m.map(key, RENAMED_KEYS[key], "renamed")
        elif key == "vf_share_layers":  # a model setting on the new stack
            m.config.setdefault("model_config", {})["vf_share_layers"] = value
            m.map(key, "model_config.vf_share_layers")
        elif key in current or key in HANDLED_KEYS or key in PROJECT_KEYS:
            m.config["lambda_" if key == "lambda" else key] = value
            m.map(key, "lambda_" if key == "lambda" else key, "kept")
        else:
            m.drop(key, f"not a PPO setting on RLlib's new API stack{did_you_mean(key, current)}")
    model = {**(raw.get("model") or {}), **(raw.get("model_config") or {})}
    section = "model" if raw.get("model") else "model_config"
    for key, value in model.items():
        if key in MODEL_UNSUPPORTED_KEYS:
            m.drop(f"{section}.{key}", MODEL_UNSUPPORTED_KEYS[key])
        elif key in MODEL_IGNORED_KEYS:
            m.drop(f"{section}.{key}", MODEL_IGNORED_KEYS[key])
        else:
            new = MODEL_RENAMED_KEYS.get(key, key)
            m.config.setdefault("model_config", {})[new] = value
            m.map(f"{section}.{key}", f"model_config.{new}")


# --------------------------------------------------------------------------- the original toolkit's env_config
def _migrate_original_env(raw: dict[str, Any], m: Migration) -> None:
    """env id and env_config of the original CARLA racing toolkit -> RacerVLidar-v0 / RacerCamera-v0 settings."""
    from control.sim.registry import vehicle_limits

    env_id = raw.get("env")
    if env_id in ORIGINAL_ENV_IDS:
        new_env, how = ORIGINAL_ENV_IDS[env_id]
        m.config["env"] = new_env
        m.map(f"env: {env_id}", f"env: {new_env}", how)
        if env_id == "carla-racer-norm":
            m.config["observation_filter"] = "MeanStdFilter"
    elif isinstance(env_id, str) and env_id.startswith("Racer"):
        m.config["env"] = env_id
        m.map("env", "env", "kept")
    else:
        m.config["env"] = "RacerVLidar-v0"
        m.drop(f"env: {env_id}", "not an env of this project or the original toolkit; RacerVLidar-v0 is used")
    camera_env = m.config["env"] == "RacerCamera-v0"
    old = copy.deepcopy(raw.get("env_config") or {})
    new: dict[str, Any] = {"simulator": "carla"}
    carla: dict[str, Any] = {}
    m.map("env_config (original toolkit)", "env_config.simulator: carla", "the original toolkit drove CARLA only")
    limits = vehicle_limits({"simulator": "carla"})  # the CARLA backend's car: steering in degrees from here

    for key, value in (old.pop("carla", None) or {}).items():
        where = f"env_config.carla.{key}"
        simple = {"host": "host", "port": "port", "timeout": "timeout_s", "avoid_server_init": "avoid_server_init",
                  "quality_level": "quality_level"}
        if key in simple:
            carla[simple[key]] = value
            m.map(where, f"env_config.carla.{simple[key]}")
        elif key == "timestep":
            carla["fixed_delta_seconds"] = float(value)
            m.map(where, "env_config.carla.fixed_delta_seconds",
                  f"server tick {float(value):g} s; the policy still acts every 1/{limits.control_hz:g} s")
        elif key == "retries_on_error":
            carla.setdefault("retries", {})["max_restarts"] = int(value)
            m.map(where, "env_config.carla.retries.max_restarts")
        elif key == "enable_rendering":
            carla["no_rendering"] = not bool(value)
            m.map(where, "env_config.carla.no_rendering", "inverted")
        elif key == "track":
            carla["map"] = str(value)
            m.map(where, "env_config.carla.map", "a CARLA map path; the track is built from its lane (track_source: route)")
        elif key == "enable_map_assets":
            m.drop(where, "the map is loaded as CARLA ships it (no asset stripping); set carla.no_rendering for speed")
        else:
            m.drop(where, "no setting of this project's CARLA backend; see control/carla/config.py")

    if "track" in old:
        carla["map"] = str(old.pop("track"))
        m.map("env_config.track", "env_config.carla.map", "a CARLA map path; the track is built from its lane")
    for key, target in (("ego_vehicle_filter", "vehicle_filter"), ("weather", "weather")):
        if key in old:
            carla[target] = old.pop(key)
            m.map(f"env_config.{key}", f"env_config.carla.{target}")
    if "background" in old:
        _migrate_background(old.pop("background"), carla, m)
    if "max_time_episode" in old:
        new["max_episode_steps"] = int(old.pop("max_time_episode"))
        m.map("env_config.max_time_episode", "env_config.max_episode_steps", "steps per episode")
    if "reward_name" in old:
        name = old.pop("reward_name")
        new["reward"] = "center_line_speed"
        m.map(f"env_config.reward_name: {name}", "env_config.reward: center_line_speed",
              "the original toolkit's rewards are not ported: the shipped configs' reward (speed along the track "
              "scaled by centering) takes its place; a DeepRacer reward_function(params) file works too")
    _migrate_sensor(old.pop("sensor", None) or {}, camera_env, new, m)
    _migrate_action(old.pop("action", None) or {}, limits, new, m)
    _migrate_spawn(old, new, m)
    for key in list(old):
        if key == "augmentations":
            for aug in old.pop(key) or {}:
                m.drop(f"env_config.augmentations.{aug}", NO_AUGMENTATION)
        else:
            old.pop(key)
            m.drop(f"env_config.{key}", "not a setting of the original toolkit this command knows, nor of this project")
    new["carla"] = carla
    m.config["env_config"] = new


def _migrate_background(value: Any, carla: dict[str, Any], m: Migration) -> None:
    """Background traffic -> carla.traffic."""
    if isinstance(value, dict):
        count = int(value.get("vehicles", value.get("number_of_vehicles", value.get("n_vehicles", 0))) or 0)
        enabled = bool(value.get("enabled", count > 0))
        for key in set(value) - {"enabled", "vehicles", "number_of_vehicles", "n_vehicles"}:
            m.drop(f"env_config.background.{key}", "the Traffic Manager's vehicles take only a count here")
    else:
        count = int(value or 0)
        enabled = count > 0
    carla["traffic"] = {"enabled": enabled, "vehicles": count}
    m.map("env_config.background", "env_config.carla.traffic", f"enabled: {enabled}, vehicles: {count}")


def _migrate_sensor(sensor: dict[str, Any], camera_env: bool, new: dict[str, Any], m: Migration) -> None:
    """sensor: ray angles or camera size -> env_config.observation."""
    observation: dict[str, Any] = {"type": "camera" if camera_env else "vlidar"}
    for key, value in sensor.items():
        where = f"env_config.sensor.{key}"
        if key == "angles_front" and not camera_env:
            angles = sorted({float(s) * float(a) for a in value for s in (-1.0, 1.0)})
            observation["angles_deg"] = angles
            m.map(where, "env_config.observation.angles_deg",
                  f"each angle on both sides of the heading: {len(angles)} rays, left positive")
        elif key == "camera_size" and camera_env:
            size = [int(value)] * 2 if not isinstance(value, (list, tuple)) else [int(v) for v in value]
            observation["width_px"], observation["height_px"] = size[0], size[-1]
            observation["normalize"] = True  # RLlib's CNN takes float images
            m.map(where, "env_config.observation.width_px/height_px", "the CARLA camera renders at this size")
        elif key in ("bew_height_meters", "bew_width_meters", "crop_type") or key == "camera_size":
            m.drop(where, RENDER_ONLY)
        elif key == "out_lane_threshold":
            m.drop(where, "off track is DeepRacer's rule here (no wheel on the track), not a distance from the lane")
        elif key == "min_crash_impulse":
            m.drop(where, "every collision the CARLA sensor reports ends the episode as crashed")
        else:
            m.drop(where, "not a sensor setting this project has")
    new["observation"] = observation


def _migrate_action(action: dict[str, Any], limits: Any, new: dict[str, Any], m: Migration) -> None:
    """action: CARLA steer in [-1, 1] -> degrees (the car's steering lock); accelerations have no counterpart."""
    from control.env.actions import DEEPRACER_DEFAULT_ACTIONS

    discrete = bool(action.get("discrete", False))
    steer_lock = float(limits.max_steering_deg)
    out: dict[str, Any] = {"type": "discrete" if discrete else "continuous"}
    speeds = sorted({a["speed"] for a in DEEPRACER_DEFAULT_ACTIONS})
    for key, value in action.items():
        where = f"env_config.action.{key}"
        if key == "discrete":
            m.map(where, f"env_config.action.type: {out['type']}")
        elif key == "discrete_steer" and discrete:
            steering = [round(float(s) * steer_lock, 3) for s in value]
            out["actions"] = [{"steering_angle": s, "speed": v} for s, v in itertools.product(steering, speeds)]
            m.map(where, "env_config.action.actions",
                  f"steer x {steer_lock:g} deg (the car's lock), each at DeepRacer's speeds {speeds} m/s")
        elif key == "continuous_steer_range" and not discrete:
            out["steering_deg"] = [round(float(v) * steer_lock, 3) for v in value]
            m.map(where, "env_config.action.steering_deg", f"steer x {steer_lock:g} deg (the car's lock)")
        elif key in ("discrete_acc", "continuous_accel_range"):
            m.drop(where, "accelerations (m/s^2) have no counterpart: the action here is a target speed "
                          "(env_config.action.speed_mps or the actions' speed)")
        else:
            m.drop(where, f"unused with discrete: {discrete}" if key.startswith(("discrete", "continuous"))
                   else "not an action setting this project has")
    new["action"] = out


def _migrate_spawn(old: dict[str, Any], new: dict[str, Any], m: Migration) -> None:
    """spawn_mode / spawn_points / ... -> env_config.start."""
    start: dict[str, Any] = {}
    if "spawn_mode" in old:
        mode = old.pop("spawn_mode")
        start["mode"] = {"random": "random", "consequent": "round_robin"}.get(mode, "random")
        m.map(f"env_config.spawn_mode: {mode}", f"env_config.start.mode: {start['mode']}")
    if "consequent_mode_step" in old:
        m.drop("env_config.consequent_mode_step", "round_robin advances by waypoints here: set start.round_robin_waypoints")
        old.pop("consequent_mode_step")
    if "n_spawn_points" in old:
        old.pop("n_spawn_points")
        m.drop("env_config.n_spawn_points", "starts may be at any waypoint of the track, not a fixed number of points")
    if "spawn_points" in old:
        points = old.pop("spawn_points") or []
        m.drop("env_config.spawn_points", f"{len(points)} CARLA x,y,yaw points: starts are track waypoints here "
               "(start.mode / start.waypoint); carla.route.start sets where the route begins")
    if "spawn_off_center" in old:
        old.pop("spawn_off_center")
        m.drop("env_config.spawn_off_center", "set start.lateral_noise_m (m) for starts off the centerline")
    if start:
        new["start"] = start


# --------------------------------------------------------------------------- the file
def migrate_config(raw: dict[str, Any]) -> Migration:
    """The migration of an old config dict (an older RLlib's, or the original toolkit's)."""
    m = Migration()
    _migrate_settings(raw, m)
    if is_original_toolkit_config(raw):
        _migrate_original_env(raw, m)
    else:
        m.config["env"] = raw.get("env")
        m.map("env", "env", "kept")
        if raw.get("env_config") is not None:
            m.config["env_config"] = raw["env_config"]
            m.map("env_config", "env_config", "kept")
    return m


def render(m: Migration, source: str) -> str:
    """The new file: the report as comments, then the config."""
    lines = [f"# Migrated from {source} by {MIGRATE_COMMAND}.",
             f"# {len(m.mapped)} keys mapped, {len(m.dropped)} dropped.", "#", "# mapped:"]
    lines += [f"#   {line}" for line in m.mapped] or ["#   (none)"]
    lines += ["#", "# dropped (and why):"]
    lines += [f"#   {line}" for line in m.dropped] or ["#   (none)"]
    body = yaml.safe_dump({k: v for k, v in m.config.items()}, sort_keys=False, default_flow_style=None, width=110)
    return "\n".join(lines) + "\n\n" + body


def check_loads(m: Migration, where: str) -> None:
    """The migrated config must load as ppo_train.py would load it (types, ranges, RLlib's validate)."""
    from control.training.config_loader import resolve_config, validate_ppo_config

    resolved = resolve_config(copy.deepcopy(m.config), where=where)
    validate_ppo_config(resolved, where=where)


def main(argv: list[str] | None = None) -> int:
    """Migrate OLD.yaml; print the report, write NEW.yaml (default OLD.migrated.yaml); returns the exit status."""
    p = argparse.ArgumentParser(prog=MIGRATE_COMMAND, description="Convert a config written for an older RLlib or "
                                "for the original CARLA racing toolkit into this project's config.")
    p.add_argument("old", metavar="OLD.yaml", help="the old config file")
    p.add_argument("-o", "--out", metavar="NEW.yaml", help="where to write the new config (default: OLD.migrated.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite NEW.yaml if it exists")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from control.training.config_loader import load_config_file

        old_path = Path(args.old)
        out = Path(args.out) if args.out else old_path.with_suffix(".migrated.yaml")
        if out.exists() and not args.force:
            raise ConfigError(f"{out} exists; pass --force to overwrite it or -o to write elsewhere")
        m = migrate_config(load_config_file(old_path))
        check_loads(m, where=f"{out} (migrated from {old_path})")
        text = render(m, str(old_path))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text.split("\n\n", 1)[0])
    print(f"\nwritten: {out}\ntrain it: python ppo_train.py {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
