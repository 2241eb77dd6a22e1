"""Remove a run's leftover CARLA containers by label: `python -m control.carla.clean --run NAME`.

Only containers labelled racer.carla.run=NAME (and racer.carla.managed=1) are touched; other
containers, including other runs' CARLA servers, survive.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from control.carla.server import LABEL_MANAGED, LABEL_RUN, CarlaServerError, _sanitize, docker_client_from_env
from control.errors import UserError


def run_containers(docker_client: Any, run_name: str) -> list[Any]:
    """Containers (running or not) that this project launched for `run_name`."""
    filters = {"label": [f"{LABEL_MANAGED}=1", f"{LABEL_RUN}={_sanitize(run_name)}"]}
    return docker_client.containers.list(all=True, filters=filters)


def clean_run(run_name: str, docker_client: Any = None, dry_run: bool = False) -> list[str]:
    """Remove the run's containers; returns their names."""
    if not run_name:
        raise UserError("carla clean: --run NAME is required (the run whose containers to remove)")
    client = docker_client or docker_client_from_env()
    names = []
    for container in run_containers(client, run_name):
        names.append(container.name)
        if not dry_run:
            container.remove(force=True)
    return names


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(prog="python -m control.carla.clean", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run name (results/<NAME>) whose containers to remove")
    parser.add_argument("--dry-run", action="store_true", help="list the containers without removing them")
    args = parser.parse_args(argv)
    try:
        names = clean_run(args.run, dry_run=args.dry_run)
    except (UserError, CarlaServerError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(names)} CARLA container(s) of run {args.run!r}" + (": " + ", ".join(names) if names else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
