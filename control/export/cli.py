"""`python -m control.export -n NAME [--checkpoint PATH]` (= `make export`): ONNX export of a trained policy."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from control.errors import ConfigError, UserError

EPILOG = """examples:
  python -m control.export -n vlidar1                 # latest checkpoint of results/vlidar1 -> results/vlidar1/export/
  python -m control.export --checkpoint results/vlidar1/train_1/PPO_.../checkpoint_000010
  make -C control export NAME=vlidar1
then:
  python ppo_inference_ray.py --onnx results/vlidar1/export/model.onnx   # rollout on onnxruntime alone
"""


def build_parser() -> argparse.ArgumentParser:
    """The export argument parser."""
    p = argparse.ArgumentParser(prog="python -m control.export", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Export a trained policy to ONNX with DeepRacer's model_metadata.json.")
    src = p.add_argument_group("policy (one of)")
    src.add_argument("--checkpoint", metavar="PATH", help="an RLlib checkpoint folder (or a run folder: its latest)")
    src.add_argument("-n", "--name", help="a run under the results folder: its latest checkpoint")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: results/<NAME>/export/)")
    p.add_argument("--observations", type=int, default=1000, metavar="N",
                   help="recorded observations on which ONNX and torch outputs are compared (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the episodes that record them (default 0)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the export with `argv` (default sys.argv[1:]); returns the exit status."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        export_from_args(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def export_from_args(args: argparse.Namespace) -> Path:
    """Resolve the checkpoint, export, print a summary; returns the export folder."""
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from control.export.exporter import export_checkpoint
    from control.rollout import inference
    from control.training.run_folder import default_results_dir

    if args.checkpoint and args.name:
        raise ConfigError("give --checkpoint PATH or -n NAME, not both")
    if args.observations < 1:
        raise ConfigError(f"--observations {args.observations}: expected a whole number >= 1")
    results_dir = Path(args.results_dir).resolve() if args.results_dir else default_results_dir()
    checkpoint = inference.resolve_checkpoint(args.checkpoint, args.name, results_dir)
    print(f"checkpoint: {checkpoint}")
    result = export_checkpoint(checkpoint, Path(args.out) if args.out else None, args.observations, args.seed)
    check = result.info["check"]
    diff = (f"action indices identical on {check['observations']} observations" if "index_mismatches" in check
            else f"max |onnx - torch| action {check['max_abs_diff_action']:.2g} on {check['observations']} observations")
    print(f"model:    {result.model_path} (opset {result.info['opset']}, onnx.checker passed; {diff})")
    print(f"metadata: {result.out_dir / 'model_metadata.json'}\ninfo:     {result.out_dir / 'export_info.json'}")
    print(f"roll it out on onnxruntime: python ppo_inference_ray.py --onnx {result.model_path}")
    return result.out_dir
