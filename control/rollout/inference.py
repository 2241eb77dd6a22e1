"""Inference from a checkpoint: find it, read its run's env config, load only the RLModule, act."""
from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from control.errors import CheckpointError, ConfigError
from control.training.run_folder import CONFIG_FILENAME as RUN_CONFIG_FILE

MODULE_SUBDIR = Path("learner_group/learner/rl_module/default_policy")
# Where RLlib's checkpoint keeps the env-to-module connector pipeline: under the local env runner (RLlib's
# default, with or without remote runners), or at the top for an algorithm without a local env runner.
# The pipeline's own state.pkl is empty: Checkpointable saves each connector in a folder of its own.
FILTER_PIPELINE_DIRS = (Path("env_runner/env_to_module_connector"), Path("env_to_module_connector"))
FILTER_STATE_FILE = FILTER_PIPELINE_DIRS[0] / "MeanStdFilter" / "state.pkl"
TRIAL_PARAMS_FILE = "params.json"


# --------------------------------------------------------------------------- finding checkpoints
def is_checkpoint(path: Path) -> bool:
    """True when `path` is an RLlib Algorithm checkpoint folder."""
    from control.training.checkpoints import is_algorithm_checkpoint

    return is_algorithm_checkpoint(path)


def resolve_checkpoint(checkpoint: str | None, name: str | None, results_dir: Path) -> Path:
    """The checkpoint folder from --checkpoint PATH, or the latest of run NAME (a run folder also works as PATH)."""
    from control.training.checkpoints import latest_checkpoint

    if checkpoint:
        path = Path(checkpoint).expanduser().resolve()
        if not path.exists():
            raise CheckpointError(f"checkpoint '{checkpoint}' does not exist; expected an RLlib checkpoint folder "
                                  "(.../checkpoint_000010) or a run folder under results/")
        if is_checkpoint(path):
            return path
        if path.is_dir() and (path / RUN_CONFIG_FILE).is_file():
            return latest_checkpoint(path)  # a run folder: its latest checkpoint
        raise CheckpointError(f"'{checkpoint}' is not a checkpoint: expected a folder holding algorithm_state.pkl "
                              "(.../checkpoint_000010) or a run folder under results/")
    if not name:
        raise ConfigError("no policy given: pass --checkpoint PATH or -n NAME (a run under results/)")
    run_folder = results_dir / name
    if not run_folder.is_dir():
        runs = sorted(p.name for p in results_dir.iterdir() if p.is_dir()) if results_dir.is_dir() else []
        from control.errors import did_you_mean

        raise CheckpointError(f"no run named '{name}' under {results_dir}{did_you_mean(name, runs)}; "
                              "expected a folder written by ppo_train.py -n NAME")
    return latest_checkpoint(run_folder)


def find_run_folder(checkpoint: Path) -> Path | None:
    """The results/<NAME>/ folder above a checkpoint (the first ancestor holding config.yaml)."""
    for parent in [checkpoint, *checkpoint.parents][:6]:
        if (parent / RUN_CONFIG_FILE).is_file():
            return parent
    return None


@dataclass
class RunConfig:
    """What inference needs from the training run: the env id, its env_config and the observation filter."""

    env: str
    env_config: dict[str, Any]
    observation_filter: str = "NoFilter"
    source: str = ""


def load_run_config(checkpoint: Path) -> RunConfig:
    """The env of the run a checkpoint belongs to: results/<NAME>/config.yaml, else Tune's params.json."""
    import yaml

    run_folder = find_run_folder(checkpoint)
    if run_folder is not None:
        path = run_folder / RUN_CONFIG_FILE
        raw = yaml.safe_load(path.read_text()) or {}
    else:
        trial = next((p for p in checkpoint.parents[:2] if (p / TRIAL_PARAMS_FILE).is_file()), None)
        if trial is None:
            raise CheckpointError(f"no {RUN_CONFIG_FILE} above checkpoint {checkpoint}: expected it inside a run "
                                  "folder results/<NAME>/ written by ppo_train.py")
        path = trial / TRIAL_PARAMS_FILE
        raw = json.loads(path.read_text())
    env = raw.get("env")
    if not isinstance(env, str):
        raise CheckpointError(f"{path} names no env; expected 'env: RacerVLidar-v0' or 'env: RacerCamera-v0'")
    filt = raw.get("observation_filter") or "NoFilter"
    return RunConfig(env=env, env_config=dict(raw.get("env_config") or {}), observation_filter=str(filt), source=str(path))


# --------------------------------------------------------------------------- building the env
def make_env(run: RunConfig, overrides: Mapping[str, Any], render: bool = True) -> Any:
    """A RacingEnv like the run's, with env_config `overrides` (track, simulator, ...) applied on top."""
    from control.env.config import merge_dicts
    from control.env.racing_env import RacingEnv
    from control.env.registration import ENV_IDS

    if run.env not in ENV_IDS:
        raise CheckpointError(f"the run trained env '{run.env}' ({run.source}); rollouts support "
                              f"{', '.join(ENV_IDS)}")
    config = merge_dicts({**ENV_IDS[run.env], **run.env_config}, dict(overrides))
    if "observation" in run.env_config:  # observation sections replace, never merge (keys depend on type)
        config["observation"] = dict(run.env_config["observation"])
    config["infos"] = "full"  # a rollout records every step's params (a training may have run with lean infos)
    return RacingEnv(config, render_mode="rgb_array" if render else None)


# --------------------------------------------------------------------------- the policy
def describe_space(space: gym.Space) -> str:
    """A short one-line description of a space: Box(34,) float32 [0..1], Discrete(10), Dict(...)."""
    if isinstance(space, gym.spaces.Box):
        lo, hi = np.min(space.low), np.max(space.high)
        return f"Box{tuple(space.shape)} {space.dtype} [{lo:g}..{hi:g}]"
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)})"
    if isinstance(space, gym.spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {describe_space(s)}" for k, s in space.spaces.items()) + ")"
    return str(space)


def spaces_match(a: gym.Space, b: gym.Space) -> bool:
    """Same kind, shape, dtype and bounds (Box), same n (Discrete), recursively for Dict."""
    if type(a) is not type(b):
        return False
    if isinstance(a, gym.spaces.Dict):
        return a.spaces.keys() == b.spaces.keys() and all(spaces_match(a[k], b[k]) for k in a.spaces)
    if isinstance(a, gym.spaces.Box):
        return (a.shape == b.shape and a.dtype == b.dtype and np.allclose(a.low, b.low) and np.allclose(a.high, b.high))
    return a == b


@dataclass(frozen=True)
class FilterStatistics:
    """MeanStdFilter as numbers: obs -> clip((obs - mean) / (std + epsilon), -clip, clip), dtypes as RLlib keeps them."""

    mean: np.ndarray
    std: np.ndarray
    demean: bool
    destd: bool
    clip: float | None
    epsilon: float
    count: int  # observations the statistics were computed from


class ObservationFilter:
    """RLlib's MeanStdFilter statistics from the checkpoint, applied without updating them."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        import tree
        from ray.rllib.utils.filter import MeanStdFilter, RunningStat

        self._filter = MeanStdFilter(state["shape"], demean=state["de_mean_to_zero"], destd=state["de_std_to_one"],
                                     clip=state["clip_by_value"])
        self._filter.running_stats = tree.unflatten_as(
            state["shape"], [RunningStat.from_state(s) for s in state["running_stats"]])

    def __call__(self, obs: Any) -> Any:
        return self._filter(obs, update=False)

    def statistics(self) -> FilterStatistics:
        """The frozen statistics as arrays, for applying the filter elsewhere (the ONNX export)."""
        from ray.rllib.utils.numpy import SMALL_NUMBER

        stats = self._filter.running_stats
        if not hasattr(stats, "mean"):
            raise CheckpointError("the checkpoint's MeanStdFilter holds nested (Dict) statistics; only a Box "
                                  "observation's filter can be exported")
        return FilterStatistics(mean=np.asarray(stats.mean), std=np.asarray(stats.std),
                                demean=bool(self._filter.demean), destd=bool(self._filter.destd),
                                clip=float(self._filter.clip) if self._filter.clip else None,
                                epsilon=float(SMALL_NUMBER), count=int(stats.num_pushes))

    @classmethod
    def from_checkpoint(cls, checkpoint: Path) -> "ObservationFilter | None":
        """The filter saved with the checkpoint's env runner, or None when it holds no statistics."""
        for pipeline_dir in FILTER_PIPELINE_DIRS:
            # MeanStdFilter/state.pkl first; the pipeline's (normally empty) state.pkl and others after it.
            paths = sorted((checkpoint / pipeline_dir).glob("*/state.pkl")) + [checkpoint / pipeline_dir / "state.pkl"]
            for path in paths:
                if path.is_file():
                    with open(path, "rb") as f:
                        state = _find_filter_state(pickle.load(f))
                    if state is not None:
                        return cls(state)
        return None


def _find_filter_state(state: Any) -> Mapping[str, Any] | None:
    """The first nested dict that looks like one agent's MeanStdFilter state."""
    if isinstance(state, Mapping):
        if "running_stats" in state and "shape" in state:
            return state
        for value in state.values():
            found = _find_filter_state(value)
            if found is not None:
                return found
    return None


class Policy:
    """The checkpoint's RLModule (no Algorithm, env runners or Tune): observation in, env action out."""

    def __init__(self, checkpoint: Path, explore: bool = False, observation_filter: str = "NoFilter") -> None:
        import torch
        from ray.rllib.core.rl_module.rl_module import RLModule

        module_dir = checkpoint / MODULE_SUBDIR
        if not module_dir.is_dir():
            raise CheckpointError(f"checkpoint {checkpoint} has no policy module at {MODULE_SUBDIR}; expected a "
                                  "single-agent PPO checkpoint written by ppo_train.py")
        torch.set_num_threads(1)  # inference on one observation: more threads only contend (STACK_NOTES)
        try:
            self.module = RLModule.from_checkpoint(str(module_dir))
        except Exception as exc:  # noqa: BLE001 - a damaged checkpoint raises anything from pickle to torch
            raise CheckpointError(f"cannot load the policy from {module_dir}: {type(exc).__name__}: {exc}") from None
        self.module.eval()
        self.explore = explore
        self.checkpoint = checkpoint
        self.filter: ObservationFilter | None = None
        self.uses_filter = observation_filter == "MeanStdFilter"
        if self.uses_filter:
            self.filter = ObservationFilter.from_checkpoint(checkpoint)
            if self.filter is None:
                print(f"warning: the run used observation_filter MeanStdFilter but {checkpoint} holds no filter "
                      "statistics; observations go to the policy unnormalised", file=sys.stderr)
        self._dist_cls = (self.module.get_exploration_action_dist_cls() if explore
                          else self.module.get_inference_action_dist_cls())
        self._torch = torch

    @property
    def action_dist_cls(self) -> type:
        """The RLModule's action distribution class used to act (inference or exploration)."""
        return self._dist_cls

    @property
    def observation_space(self) -> gym.Space:
        return self.module.observation_space

    @property
    def action_space(self) -> gym.Space:
        return self.module.action_space

    def check_env(self, env: Any, env_name: str) -> None:
        """CheckpointError naming both spaces when the env's observation or action space differs from the policy's."""
        for what, mine, theirs in (("observation", self.observation_space, env.observation_space),
                                   ("action", self.action_space, env.action_space)):
            if what == "observation" and self.uses_filter and mine is not None:
                # MeanStdFilter maps the env's space to a clipped one of the same shape.
                if getattr(mine, "shape", None) == getattr(theirs, "shape", None):
                    continue
            if mine is not None and not spaces_match(mine, theirs):
                raise CheckpointError(
                    f"checkpoint {self.checkpoint.name} expects {what} space {describe_space(mine)} but the env "
                    f"({env_name}) has {describe_space(theirs)}; roll out with the env settings it was trained with")

    def compute_action(self, obs: Any) -> Any:
        """The env action for one observation (deterministic unless explore)."""
        import tree

        torch = self._torch
        if self.filter is not None:
            obs = self.filter(obs)
        batch = tree.map_structure(lambda x: torch.as_tensor(np.asarray(x)[None]), obs)
        with torch.no_grad():
            if self.explore:
                out = self.module.forward_exploration({"obs": batch})
            else:
                out = self.module.forward_inference({"obs": batch})
            dist = self._dist_cls.from_logits(out["action_dist_inputs"])
            if not self.explore:
                dist = dist.to_deterministic()
            action = dist.sample()[0].cpu().numpy()
        space = self.action_space
        if isinstance(space, gym.spaces.Discrete):
            return int(action)
        if isinstance(space, gym.spaces.Box):
            return np.clip(action, space.low, space.high).astype(space.dtype)
        return action
