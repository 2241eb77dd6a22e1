"""`python -m control.bench [NAME ...]`: run the selected benchmarks (default: every cheap one).

Each sub-benchmark registers one entry in BENCHMARKS: a name, whether it is cheap (runs by
default), a help line, a function adding its options to the parser, and a runner that
takes the parsed arguments and returns a JSON-ready dict.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from control.errors import UserError, did_you_mean


@dataclass(frozen=True)
class Benchmark:
    """One selectable sub-benchmark."""

    name: str
    cheap: bool  # cheap benchmarks run when no name is given
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


def _env_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("env benchmark")
    group.add_argument("--steps", type=int, default=30_000, help="max timed steps per env of ours (default 30000)")
    group.add_argument("--seconds", type=float, default=5.0, help="max step time per env of ours, s (default 5)")
    group.add_argument("--peer-steps", type=int, default=3_000, help="max timed steps per peer env (default 3000)")
    group.add_argument("--peer-seconds", type=float, default=5.0, help="max step time per peer env, s (default 5)")
    group.add_argument("--track", default=None, help="track for our envs (default: the largest bundled track)")
    group.add_argument("--no-peers", action="store_true", help="skip the highway-env comparison")


def _env_run(args: argparse.Namespace) -> dict[str, Any]:
    from control.bench.env_bench import run_env_benchmark

    if args.steps < 1 or args.peer_steps < 1 or args.seconds <= 0 or args.peer_seconds <= 0:
        raise UserError("--steps/--peer-steps must be >= 1 and --seconds/--peer-seconds > 0")
    return run_env_benchmark(
        max_steps=args.steps,
        max_seconds=args.seconds,
        peer_max_steps=args.peer_steps,
        peer_max_seconds=args.peer_seconds,
        track=args.track,
        with_peers=not args.no_peers,
        seed=args.seed,
    )


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("train benchmark (time to lap; --quality; --generalisation)")
    group.add_argument("--camera", action="store_true", help="time to lap of the camera config instead of the vlidar one; "
                                                              "with --generalisation: the procedural camera config")
    group.add_argument("--config", default=None, help="train this YAML config instead of the shipped one")
    group.add_argument("--cap", default=None, help="time-to-lap wall-time cap: 300s, 5m, 1h (default 5m; 30m with --camera)")
    group.add_argument("--progress", type=float, default=100.0, help="mean lap progress that counts as lapping, %% (default 100)")
    group.add_argument("--noop-iterations", "--noop_iterations", type=int, default=3,
                       help="iterations of the no-op env for the env's share (0: skip; default 3)")
    group.add_argument("--sync-iterations", "--sync_iterations", type=int, default=5,
                       help="iterations on the one-car-per-env path (gym_env_vectorize_mode: sync) to compare "
                            "throughput with (0: skip; default 5)")
    group.add_argument("--viewer-iterations", "--viewer_iterations", type=int, default=8,
                       help="iterations without, then with the live viewer (a real server, its stream read) for the "
                            "viewer's cost to training throughput, target <= 3 %% (0: skip; default 8: fewer are noisier than the cost)")
    group.add_argument("--quality", action="store_true", help="train --minutes, then best deterministic lap vs the reference")
    group.add_argument("--all-tracks", "--all_tracks", action="store_true", help="--quality: one policy per bundled track")
    group.add_argument("--generalisation", action="store_true",
                       help="train the procedural-tracks config --minutes, then its lap rate on every bundled track "
                            "and ../shared/tracks/*.npy (none trained on) against the 90 %% target")
    group.add_argument("--appearance", action="store_true",
                       help="--generalisation (implied) of a camera policy, then the same tracks again under looks unseen "
                            "in training (colours, brightness, contrast, gamma outside its randomize ranges)")
    group.add_argument("--race", choices=("object_avoidance", "head_to_bot"), default=None,
                       help="train the shipped race config (or --config) --minutes, then deterministic episodes with its objects: "
                            "object_avoidance, crash-free lap rate (target >= 90 %%) and best lap vs the same policy's time-trial "
                            "lap (<= 1.20x); head_to_bot, laps with no crash and every bot overtaken (>= 80 %%)")
    group.add_argument("--reward", default=None,
                       help="--quality: train with this reward instead of the config's (a built-in name such as "
                            "racing_line, or a reward file)")
    group.add_argument("--minutes", type=float, default=15.0, help="--quality/--generalisation/--race training time, min (default 15)")
    group.add_argument("--episodes", type=int, default=5,
                       help="--quality/--generalisation rollout episodes per track, --race evaluation episodes (default 5)")
    group.add_argument("--bench-dir", "--bench_dir", default=None,
                       help="keep the benchmark's runs in this folder (default: a temporary folder, deleted)")


def _train_run(args: argparse.Namespace) -> dict[str, Any]:
    from control.training.stop import parse_duration_s

    if args.minutes <= 0 or args.episodes < 1 or args.noop_iterations < 0 or args.sync_iterations < 0 \
            or args.viewer_iterations < 0 or not 0 < args.progress <= 100:
        raise UserError("--minutes must be > 0, --episodes >= 1, --noop-iterations/--sync-iterations/--viewer-iterations >= 0 "
                        "and 0 < --progress <= 100")
    generalisation = args.generalisation or args.appearance
    if args.reward is not None and not args.quality:
        raise UserError("--reward goes with --quality (it replaces the config's env_config.reward for the lap-quality runs)")
    if not (args.quality or generalisation or args.race):
        from control.bench.train_bench import run_train_benchmark

        result = run_train_benchmark(camera=args.camera, config=args.config,
                                     cap_s=parse_duration_s(args.cap) if args.cap else None, progress_pct=args.progress,
                                     noop_iterations=args.noop_iterations, bench_dir=args.bench_dir, seed=args.seed,
                                     sync_iterations=args.sync_iterations)
        if args.viewer_iterations > 0:  # here, not in train_bench: control/viewer/cost.py reads train_bench's figures
            from control.bench.training_runs import CAMERA_CONFIG, VLIDAR_CONFIG, config_path
            from control.viewer.cost import run_bench_viewer_cost

            config = config_path(args.config, CAMERA_CONFIG if args.camera else VLIDAR_CONFIG)
            result["viewer_cost"] = run_bench_viewer_cost(config, iterations=args.viewer_iterations, bench_dir=args.bench_dir,
                                                          seed=args.seed)
        return result
    from control.bench.lap_quality import run_lap_quality_benchmark

    return run_lap_quality_benchmark(config=args.config, quality=args.quality, all_tracks=args.all_tracks,
                                     generalisation=generalisation, minutes=args.minutes, episodes=args.episodes,
                                     bench_dir=args.bench_dir, seed=args.seed, camera=args.camera,
                                     appearance=args.appearance, race=args.race, reward=args.reward)


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("export benchmark (inference latency, ONNX vs torch)")
    group.add_argument("--export-steps", "--export_steps", type=int, default=2000,
                       help="timed single-observation calls per model and runtime (default 2000)")


def _export_run(args: argparse.Namespace) -> dict[str, Any]:
    from control.bench.export_bench import run_export_benchmark

    if args.export_steps < 1:
        raise UserError("--export-steps must be >= 1")
    return run_export_benchmark(steps=args.export_steps, seed=args.seed)


def _tracks_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("tracks benchmark (real tracks vs the generator; centerline and optimal laps)")
    group.add_argument("--track-seeds", "--track_seeds", type=int, default=30,
                       help="generated tracks per generator profile for the distributions (default 30)")


def _tracks_run(args: argparse.Namespace) -> dict[str, Any]:
    from control.bench.track_bench import run_tracks_benchmark

    if args.track_seeds < 1:
        raise UserError("--track-seeds must be >= 1")
    return run_tracks_benchmark(seeds=args.track_seeds)


BENCHMARKS: dict[str, Benchmark] = {
    "env": Benchmark("env", True, "env steps/s of the vlidar and camera envs vs highway-env; lap-time references", _env_arguments, _env_run),
    "train": Benchmark("train", True, "minutes/steps/iterations to the first lapping iteration, throughput and the env's share; "
                       "--quality: lap time vs reference; --generalisation: lap rate on unseen tracks; --race: object avoidance / head-to-bot "
                       "targets", _train_arguments, _train_run),
    # Not cheap: exporting the two networks takes torch.export ~10-20 s on 2 cores.
    "export": Benchmark("export", False, "per-step inference latency on one core of the exported ONNX policy vs the "
                        "torch RLModule (vlidar MLP, camera CNN)", _export_arguments, _export_run),
    "tracks": Benchmark("tracks", True, "real DeepRacer tracks next to the track generator's distribution (tightest radius, "
                        "width); centerline and optimal-line laps", _tracks_arguments, _tracks_run),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered benchmark's options."""
    parser = argparse.ArgumentParser(
        prog="python -m control.bench",
        description="Benchmarks. "
        + "; ".join(f"{b.name}: {b.help}{'' if b.cheap else ' (not run by default)'}" for b in BENCHMARKS.values()),
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"benchmarks to run ({', '.join(BENCHMARKS)}; default: the cheap ones)")
    parser.add_argument("--seed", type=int, default=0, help="seed for actions and resets (default 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    for bench in BENCHMARKS.values():
        bench.add_arguments(parser)
    return parser


def selected_benchmarks(names: list[str]) -> list[Benchmark]:
    """The benchmarks named (in order), or every cheap one when none is named."""
    if not names:
        return [b for b in BENCHMARKS.values() if b.cheap]
    for name in names:
        if name not in BENCHMARKS:
            raise UserError(f"unknown benchmark '{name}'{did_you_mean(name, BENCHMARKS)}; expected one of {', '.join(BENCHMARKS)}")
    return [BENCHMARKS[n] for n in dict.fromkeys(names)]


def main(argv: list[str] | None = None) -> int:
    """Run the selected benchmarks; a user error prints one line and returns 2."""
    args = build_parser().parse_args(argv)
    try:
        results = {}
        for bench in selected_benchmarks(args.names):
            print(f"== benchmark: {bench.name} ==", flush=True)
            results[bench.name] = bench.run(args)
        if args.json is not None:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2, default=_json_default))
            print(f"results written to {args.json}")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _json_default(value: Any) -> Any:
    """numpy scalars and tuples in results -> plain JSON."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
