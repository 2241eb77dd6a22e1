"""YAML (flat RLlib style) -> resolved config with current names -> PPOConfig on RLlib's new API stack.

Older RLlib names are mapped with a one-line notice each, keys meaningless for PPO on the new stack
are reported as ignored with the reason, and unknown keys are errors with a suggestion. Nothing is
ignored silently.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field

from control.config_schema import Expect, PositiveWhole, Section, parse_section
from control.errors import ConfigError, UserError, did_you_mean, unknown_key_error
from control.training.augmentation import resolve_augmentation
from control.training.legacy_keys import (
    IGNORED_KEYS,
    MODEL_IGNORED_KEYS,
    MODEL_RENAMED_KEYS,
    MODEL_UNSUPPORTED_KEYS,
    PROJECT_KEYS,
    RENAMED_KEYS,
    RESTRICTED_KEYS,
)
from control.training.setting_rules import check_settings
from control.training.stop import StopConditions, stop_conditions_from
from control.training.torch_threads import DEFAULT_TORCH_THREADS, resolve_torch_threads
from control.training.user_paths import resolve_env_config_paths

logger = logging.getLogger(__name__)

RACING_ENV_PREFIX = "Racer"
OBSERVATION_FILTERS = ("NoFilter", "MeanStdFilter")
# Keys the loader applies itself (RLlib alone would ignore them on the new stack).
HANDLED_KEYS = ("model", "model_config", "observation_filter", "clip_rewards", "lr_schedule",
                "entropy_coeff_schedule", "vf_share_layers", "env", "env_config", "seed")
# AlgorithmConfig attributes that are not settings a user writes in a file.
_NOT_SETTINGS = {"callbacks", "input", "output", "_model_config", "_rl_module_spec",
                 "_env_to_module_connector", "_module_to_env_connector", "_learner_connector",
                 "_learner_class", "env_runner_cls", "offline_data_class", "prelearner_class"}


class _Loader(yaml.SafeLoader):
    """safe_load that also reads 1e-4 as a float (YAML 1.1 wants 1.0e-4)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_yaml(text: str, where: str) -> Any:
    """YAML text -> Python value (safe loader, 1e-4 is a float); raises ConfigError on bad YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"bad YAML in {where}: {' '.join(str(exc).split())}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file into a dict; one-line ConfigError for anything but a YAML mapping in text."""
    path = Path(path)
    example = "expected a YAML file such as resources/configs/ppo_vlidar_config.yaml"
    if path.is_dir():
        raise ConfigError(f"config file '{path}' is a directory; {example}")
    if not path.is_file():
        raise ConfigError(f"config file '{path}' does not exist; {example}")
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file '{path}' cannot be read ({exc.strerror or exc}); {example}") from None
    if b"\0" in data_bytes:
        # YAML text never holds NUL: this is a checkpoint, an archive, an image, ...
        raise ConfigError(f"config file '{path}' is binary, not YAML text; {example}")
    try:
        text = data_bytes.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file '{path}' is not UTF-8 text (byte 0x{data_bytes[exc.start]:02x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    data = parse_yaml(text, str(path))
    if data is None:
        raise ConfigError(f"config file '{path}' is empty (no settings); {example}")
    if not isinstance(data, dict):
        raise ConfigError(f"config file '{path}' must hold a mapping of settings (key: value lines), "
                          f"not a {type(data).__name__}")
    return data


def apply_overrides(raw: dict[str, Any], assignments: list[str]) -> dict[str, Any]:
    """Copy of `raw` with each 'dotted.key=yaml_value' applied (e.g. env_config.max_episode_steps=50)."""
    out = copy.deepcopy(raw)
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"bad --set '{assignment}': expected KEY=VALUE, e.g. lr=1e-4 or env_config.track=oval")
        node = out
        parts = key.split(".")
        parts[0] = _same_setting_in(out, parts[0])
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"bad --set '{assignment}': '{'.'.join(parts[:i + 1])}' is not a section")
            node = child
        node[parts[-1]] = parse_yaml(text, f"--set {key}")
    return out


def _same_setting_in(raw: dict[str, Any], key: str) -> str:
    """The name under which `raw` already holds the setting `key` (old or current name), else `key`."""
    if key in RENAMED_KEYS and RENAMED_KEYS[key] in raw:
        return RENAMED_KEYS[key]
    for old, new in RENAMED_KEYS.items():
        if new == key and old in raw:
            return old
    return key


@dataclass
class ResolvedConfig:
    """A config with current RLlib names only, plus this project's run settings."""

    settings: dict[str, Any]  # top-level AlgorithmConfig settings (current names)
    env: str
    env_config: dict[str, Any]
    model_config: dict[str, Any]
    stop: StopConditions
    checkpoint: dict[str, int]
    observation_filter: str = "NoFilter"
    clip_rewards: float | bool | None = None
    notices: list[str] = field(default_factory=list)
    augmentation: dict[str, Any] = field(default_factory=lambda: resolve_augmentation(None, "augmentation"))
    torch_threads: int = DEFAULT_TORCH_THREADS  # torch's threads in the algorithm's process (control/training/torch_threads.py)

    def to_dict(self) -> dict[str, Any]:
        """Flat dict that the loader reads back to the same config (written as the run's config.yaml)."""
        out: dict[str, Any] = {"env": self.env, **self.settings}
        if self.observation_filter != "NoFilter":
            out["observation_filter"] = self.observation_filter
        if self.clip_rewards not in (None, False):
            out["clip_rewards"] = self.clip_rewards
        out["model_config"] = dict(self.model_config)
        out["env_config"] = dict(self.env_config)
        stop = {k: v for k, v in (("iteration", self.stop.iteration), ("duration", self.stop.duration_s),
                                  ("timesteps", self.stop.timesteps), ("progress", self.stop.progress))
                if v is not None}
        out["stop"] = stop
        out["checkpoint"] = dict(self.checkpoint)
        if self.augmentation.get("type", "none") != "none":
            out["augmentation"] = dict(self.augmentation)
        if self.torch_threads != DEFAULT_TORCH_THREADS:
            out["torch_threads"] = self.torch_threads
        return out


@lru_cache(maxsize=1)
def current_setting_names() -> frozenset[str]:
    """Top-level settings PPOConfig accepts on the new stack (dict names such as 'lambda', 'lr')."""
    from ray.rllib.algorithms.ppo import PPOConfig

    names = {k.lstrip("_") if k == "_train_batch_size_per_learner" else k for k in PPOConfig().to_dict()}
    names = {k for k in names if not k.startswith("_")} - _NOT_SETTINGS - set(IGNORED_KEYS)
    return frozenset(names | {"lambda_", "train_batch_size_per_learner"})


def model_field_names() -> tuple[str, ...]:
    """Fields of RLlib's DefaultModelConfig (the new stack's `model_config`)."""
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    return tuple(f.name for f in dataclasses.fields(DefaultModelConfig))


def resolve_config(raw: dict[str, Any], where: str = "config", launch_dir: Path | None = None) -> ResolvedConfig:
    """Map a flat RLlib-style dict to current names; notices for renamed/ignored keys, errors otherwise.

    User file paths (reward .py, track .npy, CARLA files) become absolute against `launch_dir`
    (default: the current directory, where the command was started).
    """
    raw = copy.deepcopy(raw)
    notices: list[str] = []
    valid_top = sorted(current_setting_names() | set(RENAMED_KEYS) | set(IGNORED_KEYS)
                       | set(HANDLED_KEYS) | set(PROJECT_KEYS) | {"lambda"})
    settings: dict[str, Any] = {}
    model_raw: dict[str, Any] = {}
    model_config: dict[str, Any] = {}
    schedules: dict[str, Any] = {}
    observation_filter = "NoFilter"
    clip_rewards = None
    unknown: list[str] = []

    for key, value in raw.items():
        if key in RESTRICTED_KEYS:
            allowed, right = RESTRICTED_KEYS[key]
            if value not in allowed:
                raise ConfigError(f"{where}: '{key}: {value}' cannot be honoured: {right}")
            continue
        if key in IGNORED_KEYS:
            notices.append(f"ignored '{key}': {IGNORED_KEYS[key]}")
            continue
        if key in RENAMED_KEYS:
            new = RENAMED_KEYS[key]
            if new in raw:
                raise ConfigError(f"{where}: both '{key}' and its current name '{new}' are set; keep '{new}'")
            notices.append(f"'{key}' is now '{new}'")
            settings[new] = value
        elif key == "model":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: 'model' must be a mapping of model settings")
            model_raw.update(value)
        elif key == "model_config":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: 'model_config' must be a mapping of DefaultModelConfig fields")
            model_config.update(value)
        elif key == "vf_share_layers":
            notices.append("'vf_share_layers' (top level) is now 'model_config.vf_share_layers'")
            model_config.setdefault("vf_share_layers", value)
        elif key == "observation_filter":
            if value not in OBSERVATION_FILTERS:
                raise ConfigError(f"{where}: observation_filter '{value}' is not supported"
                                  f"{did_you_mean(value, OBSERVATION_FILTERS)}; use one of {', '.join(OBSERVATION_FILTERS)}")
            observation_filter = value
            if value == "MeanStdFilter":
                notices.append("'observation_filter: MeanStdFilter' is applied as RLlib's MeanStdFilter "
                               "env-to-module connector")
        elif key == "clip_rewards":
            if value is not None and (not isinstance(value, (bool, int, float))
                                      or (not isinstance(value, bool) and value < 0)):
                raise ConfigError(f"{where}: clip_rewards must be true, false or a positive number, not {value!r}")
            clip_rewards = value
            if value not in (None, False):
                notices.append(f"'clip_rewards: {value}' is applied as a learner connector that clips rewards "
                               f"to ±{1.0 if value is True else float(value):g}")
        elif key in ("lr_schedule", "entropy_coeff_schedule"):
            if value is not None:
                target = key.removesuffix("_schedule")
                notices.append(f"'{key}' is now a schedule given as '{target}: [[timestep, value], ...]'")
                schedules[target] = value
        elif key in PROJECT_KEYS or key in ("env", "env_config"):
            continue
        elif key in current_setting_names():
            settings["lambda_" if key == "lambda" else key] = value
        else:
            unknown.append(key)
    _check_unknown_keys(raw, unknown, valid_top, where)

    for target, schedule in schedules.items():
        settings[target] = _schedule(schedule, settings.get(target), target, notices, where)

    model_config = _resolve_model(model_raw, model_config, notices, where)
    _check_kl(settings, notices)
    _check_vf_clip(settings, notices)
    env, env_config = _resolve_env(raw, where, launch_dir)
    _default_vectorize_mode(settings, env, env_config, where)
    _check_evaluation(settings, notices, where)
    if env.startswith(RACING_ENV_PREFIX) and isinstance((settings.get("evaluation_config") or {}).get("env_config"), dict):
        # Evaluation runners also run in Tune's trial directory: their track/reward paths too.
        eval_cfg = settings["evaluation_config"]
        eval_cfg["env_config"] = resolve_env_config_paths(eval_cfg["env_config"], launch_dir)
    stop = stop_conditions_from(raw.get("stop"), f"{where}: stop")
    checkpoint = _resolve_checkpoint(raw.get("checkpoint"), f"{where}: checkpoint")
    augmentation = resolve_augmentation(raw.get("augmentation"), f"{where}: augmentation")
    torch_threads = resolve_torch_threads(raw.get("torch_threads"), where)
    for notice in notices:
        logger.info(notice)
    return ResolvedConfig(settings=settings, env=env, env_config=env_config, model_config=model_config,
                          stop=stop, checkpoint=checkpoint, observation_filter=observation_filter,
                          clip_rewards=clip_rewards, notices=notices, augmentation=augmentation, torch_threads=torch_threads)


def _check_unknown_keys(raw: dict[str, Any], unknown: list[str], valid_top: list[str], where: str) -> None:
    """One ConfigError naming every unknown key (top level and env_config) and the migrate command for old files."""
    from control.env.config import DEFAULT_ENV_CONFIG
    from control.training.original_toolkit_keys import MIGRATE_COMMAND, ORIGINAL_ENV_IDS

    env_config = raw.get("env_config") if isinstance(raw.get("env_config"), dict) else {}
    unknown_env = [k for k in env_config if k not in DEFAULT_ENV_CONFIG]
    for section, valid in (("carla", _carla_keys()), ("action", _action_keys())):
        given = env_config.get(section)
        if isinstance(given, dict):  # sections both formats have, with other keys in the original toolkit's
            unknown_env += [f"{section}.{k}" for k in given if k not in valid]
    original_env = raw.get("env") in ORIGINAL_ENV_IDS
    if not unknown and not original_env:
        return  # an unknown env_config key alone gets validate_env_config's own message, with its section's keys
    hint = (f"; a config written for an older RLlib or for the original CARLA racing toolkit converts with: "
            f"{MIGRATE_COMMAND} {where} -o NEW.yaml")
    if len(unknown) == 1 and not unknown_env and not original_env:
        raise ConfigError(f"{unknown_key_error(unknown[0], valid_top, where)}{hint}")
    names = [f"'{k}'{did_you_mean(k, valid_top)}" for k in unknown]
    names += [f"'env_config.{k}'" + ("" if "." in k else did_you_mean(k, DEFAULT_ENV_CONFIG)) for k in unknown_env]
    if original_env:
        names.append(f"env '{raw['env']}' (an env id of the original CARLA racing toolkit)")
    raise ConfigError(f"{len(names)} unknown keys in {where}: {', '.join(names)}{hint}")


def _carla_keys() -> set[str]:
    from control.carla.config import DEFAULT_CARLA_CONFIG

    return set(DEFAULT_CARLA_CONFIG)


def _action_keys() -> set[str]:
    """Every key some action type takes (its settings model's fields), and `type`."""
    from control.env.actions import ACTION_TYPES

    keys = {"type"}
    for action_type in ACTION_TYPES.values():
        settings = getattr(action_type, "Settings", None)
        keys |= set(getattr(settings, "model_fields", None) or getattr(action_type, "defaults", {}))
    return keys


def _schedule(schedule: Any, base: Any, target: str, notices: list[str], where: str) -> list[list[float]]:
    """Validated [[timestep, value], ...] starting at timestep 0 (RLlib's new stack requires it)."""
    ok = isinstance(schedule, list) and schedule and all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, (int, float)) for x in p) for p in schedule)
    if not ok:
        raise ConfigError(f"{where}: {target}_schedule must be a list of [timestep, value] pairs, e.g. [[0, 3e-4], [1000000, 1e-5]]")
    points = [[int(t), float(v)] for t, v in schedule]
    if any(b[0] <= a[0] for a, b in zip(points, points[1:], strict=False)):
        raise ConfigError(f"{where}: {target}_schedule timesteps must increase")
    if points[0][0] != 0:
        start = float(base) if isinstance(base, (int, float)) else points[0][1]
        notices.append(f"'{target}_schedule' starts after timestep 0: {target} is {start:g} until then")
        points.insert(0, [0, start])
    return points


def _resolve_model(model_raw: dict[str, Any], model_config: dict[str, Any], notices: list[str],
                   where: str) -> dict[str, Any]:
    """Old `model:` keys -> DefaultModelConfig fields; current `model_config:` keys win."""
    fields = model_field_names()
    out: dict[str, Any] = {}
    same_name: list[str] = []
    for key, value in model_raw.items():
        if key in MODEL_UNSUPPORTED_KEYS:
            raise ConfigError(f"{where}: 'model.{key}' cannot be honoured: {MODEL_UNSUPPORTED_KEYS[key]}")
        if key in MODEL_IGNORED_KEYS:
            notices.append(f"ignored 'model.{key}': {MODEL_IGNORED_KEYS[key]}")
            continue
        new = MODEL_RENAMED_KEYS.get(key, key)
        if new not in fields:
            raise unknown_key_error(key, set(fields) | set(MODEL_RENAMED_KEYS) | set(MODEL_IGNORED_KEYS), f"{where}: model")
        if new != key:
            notices.append(f"'model.{key}' is now 'model_config.{new}'")
        else:
            same_name.append(key)
        out[new] = value
    if same_name:
        # One line for the section: RLlib alone would ignore `model` on the new stack.
        notices.append(f"'model' is now 'model_config' (rl_module's DefaultModelConfig): {', '.join(same_name)}")
    for key, value in model_config.items():
        if key not in fields:
            raise unknown_key_error(key, fields, f"{where}: model_config")
        out[key] = value
    return out


def _check_kl(settings: dict[str, Any], notices: list[str]) -> None:
    """Old PPO switched the KL penalty off with kl_coeff: 0; the new stack has use_kl_loss."""
    if settings.get("kl_coeff") == 0 and "use_kl_loss" not in settings:
        settings["use_kl_loss"] = False
        notices.append("'kl_coeff: 0' now also sets 'use_kl_loss: false'")


VF_CLIP_NOTICE_BELOW = 100.0  # returns of a racing episode reach the 100s (about 1 per step, gamma 0.99)


def _check_vf_clip(settings: dict[str, Any], notices: list[str]) -> None:
    """A small vf_clip_param silently stops the value net learning: RLlib clamps its squared error, not the change."""
    clip = settings.get("vf_clip_param")
    if settings.get("use_critic", True) and isinstance(clip, (int, float)) and clip < VF_CLIP_NOTICE_BELOW:
        notices.append(f"'vf_clip_param: {clip:g}' clamps the value loss (squared error) at {clip:g}, so the value net "
                       f"stops learning returns more than {clip ** 0.5:.1f} off (racing returns reach the 100s) and long "
                       "runs can collapse; the shipped configs use vf_clip_param: 10000 (off in effect)")


def _check_evaluation(settings: dict[str, Any], notices: list[str], where: str) -> None:
    """Evaluation runs on its own env runners (own simulators) with deterministic actions."""
    interval = settings.get("evaluation_interval")
    if not interval:
        return
    if not settings.get("evaluation_num_env_runners"):
        settings["evaluation_num_env_runners"] = 1
        notices.append("evaluation runs on its own env runner (own simulator): evaluation_num_env_runners set to 1")
    eval_cfg = settings.setdefault("evaluation_config", {}) or {}
    if not isinstance(eval_cfg, dict):
        raise ConfigError(f"{where}: evaluation_config must be a mapping of settings")
    eval_cfg.setdefault("explore", False)
    # Marks the evaluation runners' envs: a CARLA env then uses its own server slot, never a training one.
    eval_env = eval_cfg.setdefault("env_config", {}) or {}
    eval_env["_in_evaluation"] = True
    eval_cfg["env_config"] = eval_env
    settings["evaluation_config"] = eval_cfg


# How RLlib's env runners vectorise the racing env: the built-in simulator steps all of a runner's cars in one
# native VectorEnv (RacingVectorEnv); "sync" (gymnasium's SyncVectorEnv over one-car envs) stays selectable for
# comparison and is what CARLA uses (one car per server).
BUILTIN_VECTORIZE_MODE = "vector_entry_point"


def _default_vectorize_mode(settings: dict[str, Any], env: str, env_config: dict[str, Any], where: str) -> None:
    """gym_env_vectorize_mode: vector_entry_point for the built-in simulator unless the config says otherwise."""
    if not env.startswith(RACING_ENV_PREFIX):
        return
    mode = settings.get("gym_env_vectorize_mode")
    if env_config.get("simulator", "builtin") != "builtin":
        if mode == BUILTIN_VECTORIZE_MODE:
            raise ConfigError(f"{where}: 'gym_env_vectorize_mode: {mode}' needs simulator: builtin; "
                              f"{env_config['simulator']} drives one car per server: use gym_env_vectorize_mode: sync")
        return
    if mode is None:
        settings["gym_env_vectorize_mode"] = BUILTIN_VECTORIZE_MODE


def _resolve_env(raw: dict[str, Any], where: str, launch_dir: Path | None) -> tuple[str, dict[str, Any]]:
    """The env name (registered with gymnasium/RLlib) and its validated env_config (absolute file paths)."""
    import gymnasium as gym

    import control  # noqa: F401 - registers the racing envs

    env = raw.get("env")
    if not isinstance(env, str) or not env:
        raise ConfigError(f"{where}: 'env' is missing; name a registered env such as RacerVLidar-v0")
    env_config = raw.get("env_config") or {}
    if not isinstance(env_config, dict):
        raise ConfigError(f"{where}: 'env_config' must be a mapping")
    racing = sorted(k for k in gym.envs.registry if k.startswith(RACING_ENV_PREFIX))
    if env.startswith(RACING_ENV_PREFIX) or env not in gym.envs.registry:
        if env not in racing:
            raise ConfigError(f"{where}: unknown env '{env}'{did_you_mean(env, racing)}; registered: {', '.join(racing)}")
        from control.env.config import validate_env_config

        env_config = validate_env_config(resolve_env_config_paths(env_config, launch_dir))
    return env, dict(env_config)


class CheckpointConfig(Section):
    """The config's `checkpoint:` section: how often Tune saves and how many it keeps."""

    frequency: Annotated[PositiveWhole, Expect("a whole number >= 1")] = Field(10, description="save every this many iterations (and at the end)")
    num_to_keep: Annotated[PositiveWhole, Expect("a whole number >= 1")] = Field(3, description="keep the newest this many checkpoints")


def _resolve_checkpoint(section: Any, where: str) -> dict[str, int]:
    """The `checkpoint:` section with its defaults; a bad key or value is a one-line ConfigError."""
    return parse_section(CheckpointConfig, section, where).model_dump()


def build_ppo_config(resolved: ResolvedConfig, auto_infos: str = "full") -> Any:
    """PPOConfig (new API stack) from a ResolvedConfig; callbacks are added by the caller.

    auto_infos: what env_config.infos "auto" becomes ("lean" for a training without a state log).
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from control.training.connectors import clip_rewards_connector, mean_std_filter_connector

    env_config = resolved.env_config
    if env_config.get("infos") == "auto":
        env_config = {**env_config, "infos": auto_infos}
    if env_config.get("simulator") == "carla":
        from control.carla.config import rllib_fault_tolerance_settings

        # One CARLA server per sub-env: the server manager must know how many each runner holds.
        carla = dict(env_config.get("carla") or {})
        carla.setdefault("envs_per_runner", int(resolved.settings.get("num_envs_per_env_runner", 1)))
        env_config = {**env_config, "carla": carla}
    # Our action spaces are already RLlib's normalised Box(-1, 1), and the env clips (actions.py): RLlib's
    # unsquash/clip connector would map [-1, 1] onto itself, one tree walk per car per step (≈ 13 % of
    # sampling time, measured). A config that sets either key keeps its own value.
    config = PPOConfig().environment(env=resolved.env, env_config=env_config, normalize_actions=False, clip_actions=False)
    config.update_from_dict(resolved.settings)
    if env_config.get("simulator") == "carla":
        # Second line of defence behind the backend's own reconnects: RLlib restarts a dead runner.
        config.fault_tolerance(**rllib_fault_tolerance_settings())
    if dict_observation_space(resolved) is not None:
        from ray.rllib.core.rl_module.rl_module import RLModuleSpec

        from control.training.dict_module import DictPPOCatalog

        # A Dict (camera + lidar) needs an encoder RLlib lacks; a Box keeps RLlib's default spec untouched.
        config.rl_module(rl_module_spec=RLModuleSpec(catalog_class=DictPPOCatalog))
    config.rl_module(model_config=DefaultModelConfig(**resolved.model_config))
    if resolved.observation_filter == "MeanStdFilter":
        config.env_runners(env_to_module_connector=mean_std_filter_connector)
    if resolved.clip_rewards not in (None, False):
        limit = 1.0 if resolved.clip_rewards is True else float(resolved.clip_rewards)
        config.learners(learner_connector=clip_rewards_connector(limit))
    if resolved.augmentation.get("type", "none") != "none":
        from control.training.augmentation_connector import LEARNER_CONFIG_KEY, AugmentedPPOTorchLearner

        # The learner inserts the shift into its own connector: sampling and inference stay unshifted.
        section = {**resolved.augmentation, "seed": resolved.settings.get("seed")}
        config.learners(learner_class=AugmentedPPOTorchLearner,
                        learner_config_dict={**(config.learner_config_dict or {}), LEARNER_CONFIG_KEY: section})
    return config


# RLlib ends each validation message with this advice; the one-line form drops it.
_RLLIB_SUPPRESS_HINT = re.compile(r"\s*To suppress all validation errors.*$", re.S)


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, without RLlib's 'to suppress ...' advice."""
    return " ".join(_RLLIB_SUPPRESS_HINT.sub("", str(exc)).split()) or type(exc).__name__


def validate_ppo_config(resolved: ResolvedConfig, where: str = "config") -> None:
    """Types and ranges of every setting, then RLlib's own AlgorithmConfig.validate(); one-line ConfigError.

    Needs no Ray: run it before ray.init so that a bad value costs no cluster start-up.
    """
    check_settings(resolved.settings, resolved.model_config, where)
    _check_trainable_observation(resolved, where)
    try:
        config = build_ppo_config(resolved)
    except UserError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: the settings do not make a PPO config: {_one_line(exc)}") from None
    batch = config.train_batch_size_per_learner
    if config.minibatch_size is not None and batch is not None and config.minibatch_size > batch:
        raise ConfigError(f"{where}: minibatch_size must be <= the train batch size ({batch} steps: "
                          f"train_batch_size / train_batch_size_per_learner) (got {config.minibatch_size})")
    try:
        config.validate()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: RLlib rejects the settings: {_one_line(exc)}") from None


def dict_observation_space(resolved: ResolvedConfig) -> Any:
    """The racing env's Dict observation space when its observation type gives one (both, deepracer_evo), else None."""
    observation = resolved.env_config.get("observation")
    if not resolved.env.startswith(RACING_ENV_PREFIX) or not isinstance(observation, dict):
        return None
    import control.env  # noqa: F401 - registers deepracer_evo
    from control.env.observations import make_observation_type
    from control.training.dict_module import is_dict_observation

    space = make_observation_type(observation).space()
    return space if is_dict_observation(space) else None


def _check_trainable_observation(resolved: ResolvedConfig, where: str) -> None:
    """A Dict observation the Dict policy (control/training/dict_module.py) cannot encode is refused before Ray starts.

    Without the check it would stop deep in an env runner while the module is built.
    """
    space = dict_observation_space(resolved)
    if space is None:
        return
    kind = resolved.env_config["observation"].get("type")
    if resolved.observation_filter == "MeanStdFilter":
        # RLlib's MeanStdFilter connector fails on a Dict holding a uint8 image (STACK_NOTES), and the export has none.
        raise ConfigError(f"{where}: observation_filter MeanStdFilter cannot filter the Dict observation of type {kind!r} "
                          "(camera + lidar); use observation_filter: NoFilter (the Dict policy scales the image itself)")
    import gymnasium as gym
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    from control.training.dict_module import DictPPOCatalog

    try:  # builds the encoder's config only (no torch); it does not depend on the action space
        DictPPOCatalog(space, gym.spaces.Box(-1.0, 1.0, (2,)), dataclasses.asdict(DefaultModelConfig(**resolved.model_config)))
    except ConfigError as exc:
        raise ConfigError(f"{where}: env_config.observation.type {kind!r}: {exc}") from None
    except (ValueError, TypeError, AssertionError) as exc:  # RLlib's CNN config rejects the image size
        from control.rollout.inference import describe_space

        raise ConfigError(f"{where}: model_config does not fit the {describe_space(space)} observation: "
                          f"{_one_line(exc)}; set model_config.conv_filters for this image size") from None


def load_ppo_config(path: str | Path, overrides: list[str] | None = None) -> tuple[Any, ResolvedConfig]:
    """Config file (+ --set overrides) -> (PPOConfig, ResolvedConfig), validated as ppo_train.py does."""
    raw = apply_overrides(load_config_file(path), overrides or [])
    resolved = resolve_config(raw, where=str(path))
    validate_ppo_config(resolved, where=str(path))
    return build_ppo_config(resolved), resolved
