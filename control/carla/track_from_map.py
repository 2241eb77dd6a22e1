"""A closed Track from CARLA map waypoints (lane width as track width), savable as DeepRacer .npy.

Two ways to describe the loop (env_config.carla.route):
- `points`: CARLA world (x, y) points visited in order, closed back to the first; between two
  points the route follows the lane, at each fork taking the branch that ends nearest the target;
- `start` (+ `loop`): from the lane at `start` (default: the map's first spawn point) follow the
  lane, at each junction going straight / left / right, until the route is back at the start.

Coordinates are converted to the Track's right-handed frame: (x, y) -> (x, -y).

CLI: python -m control.carla.track_from_map --host 127.0.0.1 --port 2000 --map Town04 \
         --start 10 20 --loop straight --out town04_loop.npy
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Any

import numpy as np

from control.errors import ConfigError, UserError
from control.track.track import Track

WHERE = "env_config.carla.route"


def _yaw_change_deg(a: Any, b: Any) -> float:
    return (b.transform.rotation.yaw - a.transform.rotation.yaw + 180.0) % 360.0 - 180.0


def _distance_m(a: Any, b: Any) -> float:
    la, lb = a.transform.location, b.transform.location
    return math.hypot(la.x - lb.x, la.y - lb.y)


def _choose(current: Any, options: list[Any], rule: str) -> Any:
    """The branch to take at a fork: straight = least heading change; left/right (CARLA yaw is clockwise)."""
    if rule == "left":
        return min(options, key=lambda w: _yaw_change_deg(current, w))
    if rule == "right":
        return max(options, key=lambda w: _yaw_change_deg(current, w))
    return min(options, key=lambda w: abs(_yaw_change_deg(current, w)))


def loop_from(start: Any, spacing_m: float, rule: str, max_length_m: float) -> list[Any]:
    """Waypoints every `spacing_m` from `start` following `rule` at junctions until the loop closes."""
    route = [start]
    current = start
    travelled_m = 0.0
    while travelled_m < max_length_m:
        options = current.next(spacing_m)
        if not options:
            raise ConfigError(f"{WHERE}: the lane ends after {travelled_m:.0f} m (a dead end); pick another start "
                              f"or give route.points")
        current = _choose(current, options, rule)
        travelled_m += spacing_m
        if (travelled_m > 3 * spacing_m and _distance_m(current, start) < spacing_m
                and abs(_yaw_change_deg(current, start)) < 45.0):
            return route
        route.append(current)
    raise ConfigError(f"{WHERE}: following the lane '{rule}' from ({start.transform.location.x:.1f}, "
                      f"{start.transform.location.y:.1f}) did not return to the start within {max_length_m:.0f} m; "
                      f"try another loop rule or give route.points")


def path_between(source: Any, target: Any, spacing_m: float, max_length_m: float) -> list[Any]:
    """Waypoints from `source` towards `target` (excluding target), greedily taking the closest branch."""
    path = [source]
    current = source
    travelled_m = 0.0
    while _distance_m(current, target) >= spacing_m:
        options = current.next(spacing_m)
        if not options or travelled_m >= max_length_m:
            loc = target.transform.location
            raise ConfigError(f"{WHERE}: no lane route found to point ({loc.x:.1f}, {loc.y:.1f}) within "
                              f"{max_length_m:.0f} m; add intermediate points")
        current = min(options, key=lambda w: _distance_m(w, target))
        travelled_m += spacing_m
        if _distance_m(current, target) >= spacing_m:
            path.append(current)
    return path


def route_waypoints(carla_map: Any, route: dict, carla_module: Any) -> list[Any]:
    """The closed route's waypoints (no repeated first point) from a validated `route` config."""
    spacing_m, max_length_m = float(route["spacing_m"]), float(route["max_length_m"])
    location = carla_module.Location
    if route["points"]:
        snapped = [carla_map.get_waypoint(location(x=float(x), y=float(y), z=0.0)) for x, y in route["points"]]
        if any(w is None for w in snapped):
            raise ConfigError(f"{WHERE}.points: a point is not on a road of this map")
        waypoints: list[Any] = []
        for a, b in zip(snapped, snapped[1:] + snapped[:1], strict=False):
            waypoints += path_between(a, b, spacing_m, max_length_m)
        return waypoints
    if route["start"] is not None:
        x, y = route["start"]
        start = carla_map.get_waypoint(location(x=float(x), y=float(y), z=0.0))
    else:
        spawn_points = carla_map.get_spawn_points()
        if not spawn_points:
            raise ConfigError(f"{WHERE}: the map has no spawn points; give route.start")
        start = carla_map.get_waypoint(spawn_points[0].location)
    if start is None:
        raise ConfigError(f"{WHERE}.start is not on a road of this map")
    return loop_from(start, spacing_m, route["loop"], max_length_m)


def track_from_waypoints(waypoints: list[Any], name: str) -> Track:
    """A Track in the right-handed frame from CARLA waypoints; width = each waypoint's lane width."""
    center = np.array([[w.transform.location.x, -w.transform.location.y] for w in waypoints], dtype=float)
    width = np.array([w.lane_width for w in waypoints], dtype=float)
    return Track(center, width, name=name)


def track_from_route(carla_map: Any, route: dict, carla_module: Any, name: str = "carla") -> Track:
    """The closed Track described by a validated `route` config on `carla_map`."""
    return track_from_waypoints(route_waypoints(carla_map, route, carla_module), name)


def main(argv: list[str] | None = None) -> int:
    """CLI: build a route on a running CARLA server and save it as a DeepRacer .npy."""
    from control.carla.config import validate_carla_config

    parser = argparse.ArgumentParser(prog="python -m control.carla.track_from_map", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2000)
    parser.add_argument("--map", default=None, help="town to load first (default: the loaded one)")
    parser.add_argument("--start", type=float, nargs=2, metavar=("X", "Y"), default=None)
    parser.add_argument("--point", type=float, nargs=2, action="append", metavar=("X", "Y"), default=[])
    parser.add_argument("--loop", default="straight", help="straight | left | right")
    parser.add_argument("--spacing-m", type=float, default=2.0)
    parser.add_argument("--out", required=True, help="output .npy path")
    args = parser.parse_args(argv)
    try:
        cfg = validate_carla_config({"route": {"points": args.point, "start": args.start, "loop": args.loop,
                                               "spacing_m": args.spacing_m}})
        import carla

        client = carla.Client(args.host, args.port)
        client.set_timeout(20.0)
        world = client.load_world(args.map) if args.map else client.get_world()
        track = track_from_route(world.get_map(), cfg["route"], carla, name=args.map or "carla")
        path = track.to_npy(args.out)
    except (UserError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"saved {track.num_waypoints} waypoints, {track.length_m:.0f} m, to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
