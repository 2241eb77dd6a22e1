"""Command line of ppo_inference_ray.py: roll a checkpoint out, write video, metrics and plots."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from control.errors import ConfigError, UserError
from control.rollout.episodes import CRASH_PENALTY_S

EPILOG = """examples:
  python ppo_inference_ray.py -n vlidar1                          # latest checkpoint of results/vlidar1
  python ppo_inference_ray.py --checkpoint results/vlidar1/train_1/PPO_.../checkpoint_000010 --episodes 5
  python ppo_inference_ray.py -n vlidar1 --track hairpins --continuous --reset_penalty_s 2
  python ppo_inference_ray.py -n boxes --continuous --crash_penalty_s 5   # a race type: 5 s per crash, overtakes
  python ppo_inference_ray.py -n vlidar1 --track my_track.npy --no_video --mlflow_uri http://127.0.0.1:5000
  python ppo_inference_ray.py --onnx results/vlidar1/export/model.onnx   # onnxruntime only (python -m control.export)
"""


def build_parser() -> argparse.ArgumentParser:
    """The ppo_inference_ray.py argument parser."""
    p = argparse.ArgumentParser(
        prog="ppo_inference_ray.py", description="Roll out a trained PPO racing policy: MP4 video, lap metrics, plots.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("policy (one of)")
    src.add_argument("--checkpoint", metavar="PATH", help="an RLlib checkpoint folder (or a run folder: its latest)")
    src.add_argument("-n", "--name", help="a run under the results folder: its latest checkpoint")
    src.add_argument("--onnx", metavar="PATH", help="an exported model.onnx (python -m control.export): runs on "
                     "onnxruntime alone, without torch or Ray")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--episodes", type=int, default=3, metavar="N", help="episodes to roll out (default 3)")
    p.add_argument("--explore", action="store_true", help="sample actions (default: deterministic, the best action)")
    p.add_argument("--track", metavar="NAME|FILE.npy", help="drive this track instead of the training one")
    p.add_argument("--simulator", choices=("builtin", "carla"), help="override the run's simulator")
    p.add_argument("--seed", type=int, help="seed of the first episode (start point, noise)")
    p.add_argument("--max_episode_steps", type=int, metavar="N", help="override the run's step limit per episode")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/rollouts/<time>_<track>)")
    p.add_argument("--no_video", action="store_true", help="skip the MP4 (faster)")
    p.add_argument("--single_video", action="store_true", help="one rollout.mp4 with all episodes instead of one per episode")
    p.add_argument("--continuous", action="store_true",
                   help="DeepRacer continuous evaluation: off track or a crash puts the car back with a time penalty")
    p.add_argument("--reset_penalty_s", type=float, default=2.0, metavar="S",
                   help="seconds added to the lap time per off-track or reversed reset with --continuous (default 2)")
    p.add_argument("--crash_penalty_s", type=float, default=CRASH_PENALTY_S, metavar="S",
                   help="seconds added to the lap time per crash into a box or bot with --continuous "
                        f"(default {CRASH_PENALTY_S:g}, DeepRacer's DR_EVAL_COLLISION_PENALTY)")
    p.add_argument("--mlflow_uri", metavar="URI", help="also log video, metrics and plots to the run's MLflow run")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ppo_inference_ray.py with `argv` (default sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        rollout_from_args(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    return 0


def _check_args(args: argparse.Namespace) -> None:
    if sum(bool(x) for x in (args.checkpoint, args.name, args.onnx)) > 1:
        raise ConfigError("give one of --checkpoint PATH, -n NAME or --onnx PATH")
    if args.onnx and args.explore:
        raise ConfigError("--explore needs the checkpoint: the exported ONNX graph holds the deterministic policy only")
    if args.episodes < 1:
        raise ConfigError(f"--episodes {args.episodes}: expected a whole number >= 1")
    if args.max_episode_steps is not None and args.max_episode_steps < 1:
        raise ConfigError(f"--max_episode_steps {args.max_episode_steps}: expected a whole number >= 1")
    for flag in ("reset_penalty_s", "crash_penalty_s"):
        if getattr(args, flag) < 0:
            raise ConfigError(f"--{flag} {getattr(args, flag)}: expected seconds >= 0")


def env_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """env_config keys the flags replace."""
    out: dict[str, Any] = {}
    if args.track:
        from control.track.track import Track

        Track.load(args.track)  # a bad name or file fails here, in one line, before anything heavy loads
        out["track"] = str(Path(args.track).resolve()) if args.track.endswith(".npy") else args.track
    if args.simulator:
        out["simulator"] = args.simulator
    if args.max_episode_steps is not None:
        out["max_episode_steps"] = args.max_episode_steps
    return out


def rollout_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Resolve the checkpoint and env, roll out, write everything; returns the metrics report."""
    from control.rollout import inference
    from control.training.run_folder import default_results_dir

    _check_args(args)
    results_dir = Path(args.results_dir).resolve() if args.results_dir else default_results_dir()
    overrides = env_overrides(args)
    if args.onnx:  # onnxruntime only: neither torch nor Ray is imported on this path
        from control.export.onnx_policy import OnnxPolicy

        onnx_policy = OnnxPolicy(Path(args.onnx))
        checkpoint, run = onnx_policy.model_path, onnx_policy.run_config
    else:
        checkpoint = inference.resolve_checkpoint(args.checkpoint, args.name, results_dir)
        run = inference.load_run_config(checkpoint)
    env = inference.make_env(run, overrides, render=not args.no_video)
    try:
        env_name = f"{run.env}, track {overrides.get('track', run.env_config.get('track', 'oval'))}"
        if args.onnx:
            policy = onnx_policy
        else:
            policy = inference.Policy(checkpoint, explore=args.explore, observation_filter=run.observation_filter)
        policy.check_env(env, env_name)
        run_folder = inference.find_run_folder(checkpoint)
        out_dir = Path(args.out).resolve() if args.out else _default_out(run_folder, env.track.name)
        print(f"{'onnx' if args.onnx else 'checkpoint'}: {checkpoint}\nenv: {env_name} ({env.config['simulator']})\noutput: {out_dir}")
        return _roll_out(args, env, policy, checkpoint, run_folder, out_dir)
    finally:
        env.close()


def _default_out(run_folder: Path | None, track_name: str) -> Path:
    base = (run_folder if run_folder is not None else Path.cwd()) / "rollouts"
    return base / f"{time.strftime('%Y%m%d-%H%M%S')}_{track_name}"


def _lap_references(env: Any) -> dict[str, Any] | None:
    """The built-in car's centerline and optimal-line references on the env's track (None for CARLA)."""
    if env.config["simulator"] != "builtin":
        return None
    from control.rollout.metrics import lap_references

    return lap_references(env.track, env.limits)


def _roll_out(args: argparse.Namespace, env: Any, policy: Any, checkpoint: Path, run_folder: Path | None,
              out_dir: Path) -> dict[str, Any]:
    from control.rollout.episodes import run_episodes
    from control.rollout.metrics import build_report, format_table, write_report
    from control.rollout.plots import write_rollout_plots
    from control.rollout.video import VideoRecorder

    out_dir.mkdir(parents=True, exist_ok=True)
    video = None if args.no_video else VideoRecorder(out_dir, fps=env.control_hz, single=args.single_video)
    try:
        records = run_episodes(env, policy, args.episodes, seed=args.seed, continuous=args.continuous,
                               reset_penalty_s=args.reset_penalty_s, crash_penalty_s=args.crash_penalty_s, on_frame=video, progress_bar=not args.no_progress)
    finally:
        if video is not None:
            video.close()
    tracks = {r.track_name for r in records}
    reference = _lap_references(env) if len(tracks) == 1 else None
    context = {
        "checkpoint": str(checkpoint),
        "policy_runtime": "onnxruntime" if args.onnx else "torch",
        "run": run_folder.name if run_folder is not None else None,
        "env": env.spec.id if env.spec is not None else None,
        "track": sorted(tracks)[0] if len(tracks) == 1 else sorted(tracks),
        "simulator": env.config["simulator"],
        "deterministic": not args.explore,
        "continuous": bool(args.continuous),
        "reset_penalty_s": args.reset_penalty_s if args.continuous else 0.0,
        "crash_penalty_s": args.crash_penalty_s if args.continuous else 0.0,
        "race": env.config["race"]["type"],
        "control_hz": float(env.control_hz),
        "seed": args.seed,
        "videos": [p.name for p in video.paths] if video is not None else [],
        "video_frames": {p.name: n for p, n in video.frame_counts.items()} if video is not None else {},
    }
    report = build_report(records, reference, context)
    metrics_path = write_report(report, out_dir / "metrics.json")
    plots = write_rollout_plots(records, out_dir, max_speed_mps=env.max_speed_mps)
    print(format_table(report))
    print(f"\nmetrics: {metrics_path}")
    print("plots:   " + ", ".join(p.name for p in plots))
    if video is not None:
        print("videos:  " + ", ".join(p.name for p in video.paths))
    if args.mlflow_uri:
        from control.rollout.mlflow_upload import upload_rollout

        run_id = upload_rollout(args.mlflow_uri, run_folder, out_dir, report["aggregate"],
                                run_name=f"{run_folder.name if run_folder else 'rollout'}-rollout")
        print(f"mlflow:  run {run_id}, artifacts rollouts/{out_dir.name}/")
    return report
