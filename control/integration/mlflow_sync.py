"""`make mlflow_sync NAME=...`: send what a training run could not send to MLflow (results/<NAME>/mlflow_backlog.jsonl).

python -m control.integration.mlflow_sync -n NAME [--results_dir DIR] [--mlflow_uri URI]

The tracking URI defaults to the one the run logged to (results/<NAME>/mlflow_tracking_uri,
written without credentials: set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD for a
server that needs them). What is sent leaves the backlog; what is refused stays for the next try.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from control.errors import UserError


def recorded_tracking_uri(run_folder: Path) -> str | None:
    """The tracking URI the run logged to, as the callback recorded it (None when it never did)."""
    from control.integration.callbacks.mlflow_callback import TRACKING_URI_FILE

    path = run_folder / TRACKING_URI_FILE
    if not path.is_file():
        return None
    return path.read_text().strip() or None


def sync_run(run_folder: Path, uri: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Send the backlog of `run_folder` to `uri` (default: the recorded one); returns (sent, left) entries.

    Holds the run's lock while it sends: a run that is training is refused with one line naming its process.
    """
    from control.training.run_lock import RunLock

    if not run_folder.is_dir():
        raise UserError(f"no run folder {run_folder}; expected results/<NAME>/ written by ppo_train.py -n NAME")
    # A training of this run sends its own backlog at start: syncing beside it would send entries twice.
    with RunLock(run_folder):
        return _sync_unlocked(run_folder, uri)


def _sync_unlocked(run_folder: Path, uri: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from control.integration import mlflow_backlog
    from control.integration.callbacks.mlflow_callback import CustomMlflowCallback

    entries = mlflow_backlog.read_entries(run_folder)
    if not entries:
        return [], []
    uri = uri or recorded_tracking_uri(run_folder)
    if uri is None:
        raise UserError(f"{run_folder} records no MLflow tracking URI; pass --mlflow_uri URI (make: MLFLOW_URI=...)")
    experiment = next((e["experiment"] for e in entries if e.get("type") == "run"), "Default")
    callback = CustomMlflowCallback(tracking_uri=uri, experiment_name=experiment, run_folder=run_folder)
    try:
        return callback.send_backlog()
    except Exception as exc:  # noqa: BLE001 - one line for the user, whatever MLflow raised
        left = mlflow_backlog.describe(mlflow_backlog.read_entries(run_folder))
        cause = exc.__cause__ or exc
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
        raise UserError(f"MLflow at {callback.safe_uri} did not take the backlog of {run_folder.name} ({first}); "
                        f"{left} still kept in {mlflow_backlog.backlog_path(run_folder)}") from None


def main(argv: list[str] | None = None) -> int:
    """Command line of `python -m control.integration.mlflow_sync`; returns the exit status."""
    from control.integration import mlflow_backlog

    p = argparse.ArgumentParser(prog="python -m control.integration.mlflow_sync", description=__doc__.splitlines()[0])
    p.add_argument("-n", "--name", required=True, help="the run (results/<NAME>/)")
    p.add_argument("--results_dir", help="folder holding runs (default: $RESULTS or results/ at the repo root)")
    p.add_argument("--mlflow_uri", metavar="URI", help="tracking URI (default: the one the run logged to)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from control.training.run_folder import default_results_dir

    run_folder = (Path(args.results_dir).resolve() if args.results_dir else default_results_dir()) / args.name
    try:
        sent, left = sync_run(run_folder, args.mlflow_uri)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not sent and not left:
        print(f"{run_folder.name}: nothing to send (no {mlflow_backlog.BACKLOG_FILE})")
        return 0
    if left:
        print(f"error: {run_folder.name}: sent {mlflow_backlog.describe(sent)}; {mlflow_backlog.describe(left)} refused "
              f"and still kept in {mlflow_backlog.backlog_path(run_folder)}", file=sys.stderr)
        return 2
    print(f"{run_folder.name}: sent {mlflow_backlog.describe(sent)}; backlog emptied")
    return 0


if __name__ == "__main__":
    sys.exit(main())
