"""`python -m control.viewer -n NAME`: the viewer page of a run folder, training now or finished (make viewer NAME=...)."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from control.errors import UserError
from control.viewer.server import DEFAULT_PORT, LOOPBACK_HOST, ViewerServer, is_loopback, make_app, port_arg


def build_parser() -> argparse.ArgumentParser:
    """The viewer's argument parser."""
    p = argparse.ArgumentParser(prog="python -m control.viewer",
                                description="Serve the viewer page of a run: curves from its results, cars from its "
                                            "state log (--state_log runs), the latest evaluation episode, rollout videos.")
    p.add_argument("-n", "--name", required=True, help="the run (a folder under RESULTS)")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--port", type=port_arg, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any free one)")
    p.add_argument("--host", default=LOOPBACK_HOST,
                   help=f"address to serve on (default {LOOPBACK_HOST}: this machine only; 0.0.0.0 exposes it)")
    return p


def serve_run_folder(folder: Path, server: ViewerServer, until: threading.Event | None = None) -> None:
    """Serve the page of run folder `folder` on `server` until `until` is set (or Ctrl-C)."""
    from control.viewer.live import rollout_videos
    from control.viewer.run_folder_feed import RunFolderFeed
    from control.viewer.store import ViewerStore

    store = ViewerStore()
    server.bind()
    host = server.host
    feed = RunFolderFeed(folder, store).start()
    server.start(make_app(store, run_name=folder.name, videos=lambda: rollout_videos(folder),
                          stopping=server.stopping, local_only=is_loopback(host)))
    cars = "cars from its state log" if (folder / "state_log").is_dir() else "no cars (train with --viewer or --state_log)"
    print(f"viewer of {folder}: {server.url}  ({cars}; Ctrl-C stops)", flush=True)
    try:
        (until or threading.Event()).wait()
    except KeyboardInterrupt:
        pass
    finally:
        feed.stop()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the viewer of a run folder; returns the exit status."""
    from control.training import run_folder as rf

    args = build_parser().parse_args(argv)
    try:
        results_dir = Path(args.results_dir).resolve() if args.results_dir else rf.default_results_dir()
        folder = results_dir / rf.check_run_name(args.name)
        if not folder.is_dir():
            raise UserError(f"-n {args.name}: no run folder {folder} (runs there: "
                            f"{', '.join(sorted(p.name for p in results_dir.glob('*') if p.is_dir())[:8]) or 'none'})")
        serve_run_folder(folder, ViewerServer(args.host, args.port))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
