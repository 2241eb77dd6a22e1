"""Command line of ppo_train.py: YAML config + flags -> a Tune run under results/<NAME>/."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from control.errors import ConfigError, UserError

logger = logging.getLogger(__name__)

EPILOG = """examples:
  python ppo_train.py resources/configs/ppo_vlidar_config.yaml -n vlidar1 --stop_duration 30m
  python ppo_train.py -n vlidar1 --restore --stop_iteration 200        # continue the latest checkpoint
  python ppo_train.py CONFIG --set lr=1e-4 --set env_config.track=hairpins --state_log
  python ppo_train.py CONFIG --address auto                            # join a running Ray cluster
"""


def build_parser() -> argparse.ArgumentParser:
    """The ppo_train.py argument parser."""
    from control.integration.state_log_writer import DEFAULT_MAX_MB, max_mb_arg
    from control.viewer.server import DEFAULT_PORT as DEFAULT_VIEWER_PORT
    from control.viewer.server import LOOPBACK_HOST, port_arg

    p = argparse.ArgumentParser(
        prog="ppo_train.py", description="Train a PPO racing policy with Ray RLlib under Ray Tune.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_pos", nargs="?", metavar="CONFIG", help="YAML config (flat RLlib style)")
    p.add_argument("--config", dest="config_opt", metavar="CONFIG", help="same as the positional CONFIG")
    p.add_argument("-n", "--name", help="run name: the run lives in RESULTS/NAME (default: <config>_<time>)")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder of the same name")
    p.add_argument("--restore", nargs="?", const="", default=None, metavar="PATH",
                   help="continue from a checkpoint (no PATH: the latest checkpoint of NAME); "
                        "counters carry on and --stop_duration counts from now")
    stop = p.add_argument_group("stop conditions (any one stops the run; they override the config's stop:)")
    stop.add_argument("--stop_iteration", type=int, metavar="N", help="stop at training iteration N (lifetime)")
    stop.add_argument("--stop_duration", metavar="T", help="stop after T wall time from (re)start: 360s, 10m, 1h, 1h30m")
    stop.add_argument("--stop_timesteps", type=int, metavar="N", help="stop after N env steps sampled (lifetime)")
    stop.add_argument("--stop_progress", type=float, metavar="P", help="stop once mean lap progress reaches P percent")
    p.add_argument("--state_log", action="store_true", help="write every step's reward inputs as CSV under RUN/state_log/")
    p.add_argument("--state_log_max_mb", type=max_mb_arg, default=DEFAULT_MAX_MB, metavar="MB",
                   help=f"cap on RUN/state_log/: the oldest iterations' files go first (default {DEFAULT_MAX_MB:.0f}; 0 = no cap)")
    p.add_argument("--mlflow_uri", metavar="URI", help="log params, metrics and artifacts to this MLflow tracking URI")
    p.add_argument("--mlflow_experiment", metavar="NAME", help="MLflow experiment (default: the config file's stem)")
    p.add_argument("--mlflow_checkpoints", action="store_true", help="also upload checkpoints to MLflow")
    p.add_argument("--address", metavar="ADDR", help="join a running Ray cluster ('auto' or HEAD_IP:PORT)")
    p.add_argument("--viewer", nargs="?", const=DEFAULT_VIEWER_PORT, default=None, type=port_arg, metavar="PORT",
                   help=f"watch the training in a browser: cars, curves, latest lap (default port {DEFAULT_VIEWER_PORT}; "
                        "0 = any free port; put it after CONFIG)")
    p.add_argument("--viewer_host", default=LOOPBACK_HOST, metavar="ADDR",
                   help=f"address the viewer serves on (default {LOOPBACK_HOST}: this machine only; "
                        "0.0.0.0 exposes it to the network)")
    p.add_argument("--num_env_runners", type=int, metavar="N", help="number of sampling env runners")
    p.add_argument("--seed", type=int, help="seed for RLlib and the envs")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable); dotted keys reach into sections, "
                        "e.g. env_config.max_episode_steps=200 or model.fcnet_hiddens=[64,64]")
    p.add_argument("--checkpoint_frequency", type=int, metavar="K", help="checkpoint every K iterations")
    p.add_argument("--checkpoint_num_to_keep", type=int, metavar="N", help="keep the last N checkpoints")
    p.add_argument("-v", "--verbose", type=int, default=1, choices=(0, 1, 2),
                   help="console output: 0 start/end only, 1 one line per iteration (default), 2 Tune's tables and worker logs")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ppo_train.py with `argv` (default sys.argv[1:]); returns the exit status."""
    from control.training.error_cause import find_disk_full, find_user_error
    from control.training.tune_run import StopSignal

    # First of all: a SIGTERM/SIGINT from now on asks for a clean stop instead of killing us
    # half-way through making the run folder (a folder left empty would block the NAME).
    stop_signal = StopSignal()
    stop_signal.install()
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        try:
            outcome = train_from_args(args, argv, stop_signal=stop_signal)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            print(f"aborted: {exc}", file=sys.stderr)
            return 130
        except Exception as exc:
            found = find_user_error(exc)  # a project error wrapped by Ray/RLlib/Tune
            if found is None:
                found = find_disk_full(exc, _run_folder_of(args))
            if found is None:
                raise
            print(f"error: {found}", file=sys.stderr)
            return 2
    finally:
        stop_signal.uninstall()
    if outcome is None:
        print(f"{stop_signal.received} received before training started: nothing was trained, "
              "no run folder is left behind")
        return 0
    _print_outcome(outcome)
    return 0


def _run_folder_of(args: argparse.Namespace) -> Path:
    """The run folder the flags name (for messages about it after a failure)."""
    from control.training import run_folder as rf

    results_dir = Path(args.results_dir).resolve() if args.results_dir else rf.default_results_dir()
    return results_dir / (args.name or "")


def resolve_training_config(config_path: str | Path, *, name: str, overrides: list[str] | None = None,
                            seed: int | None = None, stop: dict[str, Any] | None = None,
                            checkpoint: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """(resolved config, the config to record in config.yaml) for a config file, --set overrides and stop/seed settings.

    stop / checkpoint override the file's `stop:` / `checkpoint:` keys (iteration, duration in s, timesteps,
    progress; frequency, num_to_keep). The recorded config keeps the file's own stop: a restore without stop
    flags runs to it (the flags are in command.txt). Validated before any Ray process starts.
    """
    from control.training.config_loader import apply_overrides, load_config_file, resolve_config, validate_ppo_config

    overrides = list(overrides or [])
    if seed is not None:
        overrides.append(f"seed={seed}")
    raw = apply_overrides(load_config_file(config_path), overrides)
    if raw.get("env_config") is None:  # absent, or an empty `env_config:` in the YAML
        raw["env_config"] = {}
    env_config = raw["env_config"]
    if isinstance(env_config, dict) and str(raw.get("env", "")).startswith("Racer"):
        env_config["run_name"] = name
        if seed is not None:
            env_config["seed"] = seed
    file_stop = dict(raw.get("stop") or {})
    raw["stop"] = {**file_stop, **(stop or {})}
    raw["checkpoint"] = {**dict(raw.get("checkpoint") or {}), **(checkpoint or {})}
    resolved = resolve_config(raw, where=str(config_path))
    for notice in resolved.notices:
        print(f"config: {notice}", file=sys.stderr)
    validate_ppo_config(resolved, where=str(config_path))  # types, ranges, RLlib's validate(): before Ray starts
    recorded = resolved.to_dict()
    recorded["stop"] = file_stop
    return resolved, recorded


def train_from_args(args: argparse.Namespace, argv: list[str], stop_signal: Any = None) -> Any:
    """Resolve the config from the flags, then train() it; None when a stop signal came before training."""
    from control.training import run_folder as rf
    from control.training.stop import parse_duration_s

    if args.config_pos and args.config_opt and args.config_pos != args.config_opt:
        raise ConfigError(f"two configs given ({args.config_pos}, {args.config_opt}): give one")
    results_dir = Path(args.results_dir).resolve() if args.results_dir else rf.default_results_dir()
    restoring = args.restore is not None
    config_path = args.config_pos or args.config_opt
    if restoring and not args.name and args.restore == "":
        raise ConfigError("--restore without a PATH needs -n/--name: the run whose latest checkpoint to continue")
    name = args.name or rf.default_run_name(config_path)
    if config_path is None:
        if not restoring:
            raise ConfigError("no config: pass CONFIG, e.g. resources/configs/ppo_vlidar_config.yaml")
        config_path = results_dir / rf.check_run_name(name) / rf.CONFIG_FILENAME
    # Parse every flag before touching the run folder, so a typo never leaves a half-made run.
    stop_duration_s = parse_duration_s(args.stop_duration) if args.stop_duration is not None else None
    for flag in ("stop_iteration", "stop_timesteps", "num_env_runners", "checkpoint_frequency",
                 "checkpoint_num_to_keep"):
        value = getattr(args, flag)
        if value is not None and value < (0 if flag == "num_env_runners" else 1):
            raise ConfigError(f"--{flag} {value}: expected a whole number >= {0 if flag == 'num_env_runners' else 1}")
    overrides = list(args.overrides)
    if args.num_env_runners is not None:
        overrides.append(f"num_env_runners={args.num_env_runners}")
    stop = {key: value for key, value in (("iteration", args.stop_iteration), ("duration", stop_duration_s),
                                          ("timesteps", args.stop_timesteps), ("progress", args.stop_progress))
            if value is not None}
    checkpoint = {key: value for key, value in (("frequency", args.checkpoint_frequency),
                                                ("num_to_keep", args.checkpoint_num_to_keep)) if value is not None}
    resolved, recorded = resolve_training_config(config_path, name=name, overrides=overrides, seed=args.seed,
                                                 stop=stop, checkpoint=checkpoint)
    return train(resolved, results_dir=results_dir, name=name, restore=args.restore, overwrite=args.overwrite,
                 recorded_config=recorded, address=args.address, state_log=args.state_log,
                 state_log_max_mb=args.state_log_max_mb,
                 mlflow_uri=args.mlflow_uri, mlflow_experiment=args.mlflow_experiment or Path(str(config_path)).stem,
                 mlflow_checkpoints=args.mlflow_checkpoints, command_line=argv, verbose=args.verbose,
                 stop_signal=stop_signal, viewer=args.viewer is not None, viewer_port=args.viewer,
                 viewer_host=args.viewer_host)


def train(resolved: Any, *, results_dir: Path, name: str, restore: str | None = None, overwrite: bool = False,
          recorded_config: dict[str, Any] | None = None, address: str | None = None, state_log: bool = False,
          mlflow_uri: str | None = None, mlflow_experiment: str = "racing", mlflow_checkpoints: bool = False,
          command_line: list[str] | None = None, verbose: int = 1, stop_signal: Any = None,
          state_log_max_mb: float | None = None, viewer: Any = False, viewer_port: int | None = None,
          viewer_host: str | None = None) -> Any:
    """Train a resolved config as run `name` under results_dir, holding the run's lock while it trains.

    restore: None (a new run), "" (continue the run's newest complete checkpoint) or a checkpoint/run path.
    viewer: True serves the live viewer on viewer_host:viewer_port (default 127.0.0.1:8731), or a LiveViewer to use.
    Returns the TrainOutcome, or None when `stop_signal` fired before training began (nothing is left behind).
    """
    from control.training import run_folder as rf
    from control.training.checkpoints import resolve_restore_path
    from control.training.ray_address import check_ray_address
    from control.training.run_lock import RunLock
    from control.training.tune_run import InterruptedBeforeTraining

    if state_log and resolved.env_config.get("infos") == "lean":
        raise ConfigError("--state_log writes every step's params, but env_config.infos is 'lean' (last steps only); "
                          "set env_config.infos to auto or full")
    command_line = list(command_line or [])
    recorded = recorded_config if recorded_config is not None else resolved.to_dict()
    restoring = restore is not None
    if address:
        check_ray_address(address)  # before any folder is made: a wrong address leaves nothing behind
    restore_path = resolve_restore_path(restore, results_dir / name) if restore else None
    folder = results_dir / rf.check_run_name(name)
    existed = folder.exists()
    if restore == "" and not existed:
        raise UserError(f"--restore: no run named '{name}' under {results_dir}")
    live_viewer = _bind_viewer(viewer, viewer_port, viewer_host)  # a busy port fails here, before any folder
    try:
        lock = RunLock(folder).acquire()  # before --overwrite deletes anything: never under a running training
    except BaseException:
        if live_viewer is not None:
            live_viewer.stop()
        raise
    started = rf.RunStart(folder, fresh=not existed)
    try:
        folder = rf.prepare_run_folder(results_dir, name, overwrite=overwrite, restore=restoring,
                                       restore_elsewhere=bool(restore))
        started.fresh = started.fresh or (overwrite and not restoring)  # --overwrite emptied it
        if restoring and restore_path is None:
            restore_path = resolve_restore_path(restore, folder)
        write_config_now = not rf.has_run_files(folder)  # nothing earlier to protect
        rf.append_command_line(folder, command_line)
        if write_config_now:
            rf.write_config(folder, recorded)
        # else: config.yaml is replaced only once this start has trained an iteration (ConfigOnFirstResult).
        print(f"run folder: {folder}")
        if restore_path is not None:
            print(f"restoring: {restore_path}")
        print(f"stops at: {resolved.stop.describe()}")
        outcome = run_training(resolved, folder, address=address, restore_path=restore_path,
                               state_log=state_log, state_log_max_mb=state_log_max_mb,
                               mlflow_uri=mlflow_uri, mlflow_experiment=mlflow_experiment,
                               mlflow_checkpoints=mlflow_checkpoints, command_line=command_line, verbose=verbose,
                               stop_signal=stop_signal, viewer=live_viewer,
                               config_to_write=None if write_config_now else recorded)
    except InterruptedBeforeTraining:
        started.remove_if_untrained()
        return None
    except BaseException:
        started.remove_if_untrained()
        raise
    finally:
        if live_viewer is not None:
            live_viewer.stop()
        lock.release()
    return outcome


def _use_the_local_ray_token() -> None:
    """Send this machine's Ray auth token when joining a cluster at an explicit address.

    Ray 2.60's `ray start --head` turns token auth on when ~/.ray/auth_token exists (any earlier local
    ray.init() writes one), but ray.init(address=...) never turns it on by itself, so the join failed with
    "InvalidAuthToken". A token-mode client joins a cluster without auth too (checked), so this is what
    `ray start` does: token mode when a token is there and RAY_AUTH_MODE is unset. (Private Ray API.)
    """
    try:
        from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available
    except ImportError:  # another Ray version: its own rules apply
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def _bind_viewer(viewer: Any, port: int | None, host: str | None) -> Any:
    """The LiveViewer to serve (its port taken now), or None without a viewer."""
    if viewer is False or viewer is None:
        return None
    from control.viewer.live import LiveViewer
    from control.viewer.server import DEFAULT_PORT, LOOPBACK_HOST

    if viewer is True:
        viewer = LiveViewer(DEFAULT_PORT if port is None else port, host or LOOPBACK_HOST)
    return viewer.bind()


def run_training(resolved: Any, folder: Path, *, address: str | None = None, restore_path: Path | None = None,
                 state_log: bool = False, mlflow_uri: str | None = None, mlflow_experiment: str = "racing",
                 mlflow_checkpoints: bool = False, command_line: list[str] | None = None,
                 verbose: int = 1, stop_signal: Any = None, config_to_write: dict[str, Any] | None = None,
                 state_log_max_mb: float | None = None, viewer: Any = None) -> Any:
    """Build the PPOConfig with this project's callbacks and run it under Tune (Ray started or joined here).

    config_to_write: written as the run's config.yaml once this start has trained its first iteration.
    viewer: a bound LiveViewer: attached once Ray is up, stopped before Ray goes down.
    """
    import ray

    from control.integration.callbacks.metrics import EpisodeMetricsCallback
    from control.integration.callbacks.state_log import make_state_log_callback
    from control.redact import redact_argv, redact_mapping
    from control.training.checkpoints import make_restore_callback
    from control.training.config_loader import build_ppo_config
    from control.training.private_ray import start_private_ray
    from control.training.run_folder import STATE_LOG_DIRNAME
    from control.training.tune_run import ConfigOnFirstResult, InterruptedBeforeTraining, run_tune

    started_ray = False
    if not ray.is_initialized():
        # Workers inherit these: one torch thread each (2 threads on a busy core cost 10x, see STACK_NOTES).
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        if address:
            _use_the_local_ray_token()
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=verbose > 1,
                         runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "PYTHONPATH": _repo_pythonpath()}})
            except ConnectionError as exc:
                raise UserError(f"--address {address}: could not join the Ray cluster there ({exc})") from None
        else:
            start_private_ray(log_to_driver=verbose > 1)
        started_ray = True
    if stop_signal is not None:
        stop_signal.reinstall()  # ray.init replaced our SIGTERM handler with one that aborts (logging.cc)
    try:
        if stop_signal is not None and stop_signal.received:
            raise InterruptedBeforeTraining(stop_signal.received)
        _register_envs()
        # The state log writes every step's params; without it, env runners get lean step infos (much less to store).
        config = build_ppo_config(resolved, auto_infos="full" if state_log else "lean")
        _use_user_error_env_runner(config)
        callbacks: list[type] = []
        if restore_path is not None:
            callbacks.append(make_restore_callback(restore_path))  # first: the others see restored counters
        callbacks.append(EpisodeMetricsCallback)
        if resolved.torch_threads != 1:
            from control.training.torch_threads import torch_threads_callback

            callbacks.append(torch_threads_callback(resolved.torch_threads))
        state_log_dir = folder / STATE_LOG_DIRNAME
        if state_log:
            callbacks.append(make_state_log_callback(state_log_dir, state_log_max_mb))
        if viewer is not None:
            viewer.attach(folder.name, folder)
            callbacks.append(viewer.rllib_callback())
        config.callbacks(callbacks_class=callbacks)
        from control.training.remote_user_error import UserErrorWatch

        tune_callbacks: list[Any] = [UserErrorWatch()]
        if config_to_write is not None:
            tune_callbacks.append(ConfigOnFirstResult(folder, config_to_write))
        if viewer is not None:
            tune_callbacks.append(viewer.tune_callback())
        if verbose == 1:
            from control.integration.callbacks.progress_line import IterationLineCallback

            tune_callbacks.append(IterationLineCallback())
        if mlflow_uri:
            tune_callbacks.append(_mlflow_callback(mlflow_uri, mlflow_experiment, folder, redact_mapping(resolved.to_dict()),
                                                   redact_argv(command_line or []), mlflow_checkpoints,
                                                   state_log_dir if state_log else None))
        if stop_signal is not None and stop_signal.received:
            raise InterruptedBeforeTraining(stop_signal.received)
        return run_tune(config, run_folder=folder, stop=resolved.stop,
                        checkpoint_frequency=resolved.checkpoint["frequency"],
                        checkpoint_num_to_keep=resolved.checkpoint["num_to_keep"],
                        tune_callbacks=tune_callbacks, verbose=2 if verbose == 2 else 0, stop_signal=stop_signal)
    finally:
        if viewer is not None:
            viewer.stop()  # before Ray goes: the channel actor is killed while Ray still answers
        if started_ray:
            ray.shutdown()


def _use_user_error_env_runner(config: Any) -> None:
    """RLlib's default env runner, but a project error in it ends the run instead of restarting it forever."""
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    from control.training.remote_user_error import UserErrorEnvRunner

    if config.env_runner_cls in (None, SingleAgentEnvRunner):
        config.env_runners(env_runner_cls=UserErrorEnvRunner)


def _register_envs() -> None:
    """Register the racing envs with RLlib's registry (import order may have skipped it)."""
    try:
        from control.env.registration import register_rllib_envs
    except ImportError:  # the env package is not there (a non-racing env such as CartPole still trains)
        return
    register_rllib_envs()


def _repo_pythonpath() -> str:
    """The repo root, so workers on other nodes of a cluster can import `control` from the same path."""
    from control.training.run_folder import REPO_ROOT

    return os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)


def _mlflow_callback(uri: str, experiment: str, folder: Path, resolved: dict[str, Any], argv: list[str],
                     log_checkpoints: bool, state_log_dir: Path | None) -> Any:
    """The project's MLflow Tune callback (imported only when asked for)."""
    try:
        from control.integration.callbacks.mlflow_callback import CustomMlflowCallback
    except ImportError as exc:
        raise UserError(f"--mlflow_uri needs the MLflow callback: {exc}") from None
    return CustomMlflowCallback(tracking_uri=uri, experiment_name=experiment, run_folder=folder,
                                resolved_config=resolved, command_line=" ".join(["ppo_train.py", *argv]),
                                run_name=folder.name, log_checkpoints=log_checkpoints,
                                state_log_dir=state_log_dir)


def _print_outcome(outcome: Any) -> None:
    """Where the checkpoint is and how to roll it out."""
    print(f"\ntraining stopped: {outcome.stop_reason} (iteration {outcome.iteration}, "
          f"{outcome.timesteps} env steps)")
    if outcome.checkpoint is None:
        print("no checkpoint was saved")
        return
    name = outcome.run_folder.name
    print(f"checkpoint: {outcome.checkpoint}")
    print(f"roll it out:   make -C control rollout NAME={name}")
    print(f"or continue:   make -C control train_restore NAME={name}")
