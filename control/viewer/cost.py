"""The viewer's cost to training throughput: the same seeded config trained without and with the viewer (a page open).

`python -m control.viewer.cost [--iterations N] [--config PATH]` prints both throughputs and the
difference; `python -m control.bench train` measures the same in its run (`--viewer-iterations`,
run_bench_viewer_cost()). Throughput is the train bench's own figure (control/bench/train_bench.py:
env steps over Tune's time_this_iter_s, the warm-up iteration left out), so the two numbers compare
like with like. Only meaningful on a quiet machine.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from control.bench.train_bench import iteration_cost
from control.bench.training_runs import VLIDAR_CONFIG, benchmark_dir, config_path, read_results


def _read_events(url: str, until: threading.Event) -> None:
    """A page's event stream, read until `until` is set (the viewer then does all it does for a watcher)."""
    while not until.is_set():
        try:
            with urllib.request.urlopen(url + "api/events", timeout=30) as response:
                while not until.is_set() and response.readline():
                    pass
        except OSError:
            until.wait(0.5)  # the server is not up yet, or went with the training


def train_once(config: Path, results_dir: Path, name: str, *, iterations: int, viewer: bool,
               overrides: list[str] | None = None, seed: int | None = 1) -> dict[str, Any]:
    """Train `config` for `iterations` (with the viewer and a reader of its stream when asked); the iteration cost."""
    from control.training.cli import resolve_training_config, train
    from control.viewer.live import LiveViewer

    resolved, recorded = resolve_training_config(config, name=name, overrides=["stop={}", *(overrides or [])],
                                                 seed=seed, stop={"iteration": iterations})
    live = LiveViewer(port=0) if viewer else None
    done = threading.Event()
    reader = None
    if live is not None:
        live.bind()
        reader = threading.Thread(target=_read_events, args=(live.url, done), daemon=True)
        reader.start()
    try:
        train(resolved, results_dir=results_dir, name=name, overwrite=True, recorded_config=recorded,
              command_line=[str(config), "-n", name], verbose=0, viewer=live or False)
    finally:
        done.set()
    cost = iteration_cost(read_results(results_dir / name)).as_dict()
    if live is not None:
        cost["viewer_channel"] = live.channel_stats
        cost["snapshots_read_by_page"] = live.store.stats()["received"]
    return cost


VIEWER_COST_TARGET_PCT = 3.0  # issue 16: the viewer may cost at most 3 % of training throughput


def compare_viewer_cost(config: Path, results_dir: Path, *, iterations: int, overrides: list[str] | None = None,
                        seed: int | None = 1) -> dict[str, Any]:
    """Train `config` without, then with the viewer (a reader on its stream), one after the other; both figures and the cost."""
    plain = train_once(config, results_dir, "viewer_off", iterations=iterations, viewer=False, overrides=overrides, seed=seed)
    watched = train_once(config, results_dir, "viewer_on", iterations=iterations, viewer=True, overrides=overrides, seed=seed)
    return viewer_cost_result(str(config), iterations, plain, watched)


def viewer_cost_result(config: str, iterations: int, plain: dict[str, Any], watched: dict[str, Any]) -> dict[str, Any]:
    """The comparison's JSON: both iteration costs, the viewer's share of training throughput and the target."""
    share = 1.0 - watched["train_steps_per_s"] / plain["train_steps_per_s"]
    return {"config": config, "iterations": iterations, "no_viewer": plain, "viewer": watched,
            "viewer_cost_of_training": share, "viewer_cost_pct": 100 * share, "target_pct": VIEWER_COST_TARGET_PCT,
            "within_target": bool(100 * share <= VIEWER_COST_TARGET_PCT)}


def run_viewer_cost(config: str | None = None, iterations: int = 6, overrides: list[str] | None = None,
                    bench_dir: str | None = None) -> dict[str, Any]:
    """Training throughput without and with the viewer (page open) and the viewer's share of it."""
    path = config_path(config, VLIDAR_CONFIG)
    folder = Path(bench_dir).resolve() if bench_dir else Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    try:
        return compare_viewer_cost(path, folder, iterations=iterations, overrides=overrides)
    finally:
        if not bench_dir:
            shutil.rmtree(folder, ignore_errors=True)


def run_bench_viewer_cost(config: Path, *, iterations: int, bench_dir: str | None = None, seed: int | None = None,
                          overrides: list[str] | None = None) -> dict[str, Any]:
    """The train benchmark's viewer row: the comparison in the benchmark's folder, printed as one line; its JSON."""
    print(f"live viewer off, then on: {iterations} iterations each", flush=True)
    with benchmark_dir(bench_dir) as folder:
        out = compare_viewer_cost(config, folder, iterations=iterations, overrides=overrides, seed=seed)
    print(format_viewer_cost_row(out), flush=True)
    return out


def format_viewer_cost_row(out: dict[str, Any]) -> str:
    """One line: training steps/s with the viewer off and on, and its cost against the target."""
    verdict = "met" if out["within_target"] else "NOT met"
    return (f"training steps/s, iterations 2..{out['iterations']}: viewer off {out['no_viewer']['train_steps_per_s']:.0f}  vs  "
            f"viewer on (stream read) {out['viewer']['train_steps_per_s']:.0f}  -> viewer cost {out['viewer_cost_pct']:+.1f} % "
            f"(target <= {out['target_pct']:g} %: {verdict})")


def format_viewer_cost(out: dict[str, Any]) -> str:
    """Both throughputs and the difference, one line each."""
    return "\n".join([
        f"config: {out['config']}  ({out['iterations']} iterations, the first left out)",
        f"training steps/s without viewer: {out['no_viewer']['train_steps_per_s']:8.0f}",
        f"training steps/s with viewer:    {out['viewer']['train_steps_per_s']:8.0f}  (page open, "
        f"{out['viewer'].get('snapshots_read_by_page', 0)} snapshots read)",
        f"viewer cost: {out['viewer_cost_pct']:+.1f} % of training throughput (target <= {out['target_pct']:g} %)",
    ])


def main(argv: list[str] | None = None) -> int:
    """Measure and print the viewer's cost."""
    p = argparse.ArgumentParser(prog="python -m control.viewer.cost", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="training config (default: the vlidar config)")
    p.add_argument("--iterations", type=int, default=6, help="iterations per run (default 6)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    out = run_viewer_cost(args.config, args.iterations, args.overrides)
    print(format_viewer_cost(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
