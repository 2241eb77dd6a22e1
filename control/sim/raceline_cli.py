"""`python -m control.sim.raceline_cli TRACK [--out line.npy] [--plot line.png]`: a track's racing line.

Prints the built-in car's centerline lap, the optimal-line lap (the limit) and the lap the
tracking controller drives along the line in the simulator, flying and from a standing start.
`--out` writes DeepRacer's community race-line format: an (N+1)×2 array of x, y in metres,
first row repeated last (what the community notebooks save and reward functions load), and
the speed profile beside it as `<name>_speed.npy`, (N+1,) m/s; `--with-speed` writes one
(N+1)×3 array x, y, speed instead.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from control.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    """The racing-line CLI's argument parser."""
    from control.sim.raceline import DEFAULT_MARGIN_M

    p = argparse.ArgumentParser(prog="python -m control.sim.raceline_cli", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("track", metavar="TRACK", help="a bundled track name or a DeepRacer .npy waypoint file")
    p.add_argument("--out", metavar="LINE.npy", help="write the line (N+1)x2 x, y and LINE_speed.npy")
    p.add_argument("--with-speed", "--with_speed", action="store_true", help="--out writes one (N+1)x3 array: x, y, speed m/s")
    p.add_argument("--plot", metavar="LINE.png", help="write a plot of the track and the line coloured by speed")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN_M, metavar="M",
                   help=f"distance kept from each border beyond the car's half-width, m (default {DEFAULT_MARGIN_M})")
    p.add_argument("--no-cache", "--no_cache", action="store_true", help="recompute even when a cached line exists")
    return p


def speed_file(out: Path) -> Path:
    """Where the speed column goes beside a line file: line.npy -> line_speed.npy."""
    return out.with_name(f"{out.stem}_speed.npy")


def write_line(line, out: Path, with_speed: bool = False) -> list[Path]:
    """Write the line in the community race-line format; returns the files written."""
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, line.to_community_array(with_speed=with_speed))
    if with_speed:
        return [out]
    np.save(speed_file(out), np.r_[line.speed_mps, line.speed_mps[:1]])
    return [out, speed_file(out)]


def plot_line(track, line, path: Path) -> Path:
    """Top-down plot: borders, centerline, the racing line coloured by its speed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(9, 7), dpi=110)
    for border in (track.inner_m, track.outer_m):
        closed = np.vstack([border, border[:1]])
        ax.plot(closed[:, 0], closed[:, 1], color="0.2", lw=1.2)
    center = np.vstack([track.center_m, track.center_m[:1]])
    ax.plot(center[:, 0], center[:, 1], color="0.6", lw=0.8, ls="--", label="centerline")
    dots = ax.scatter(line.xy_m[:, 0], line.xy_m[:, 1], c=line.speed_mps, cmap="viridis", s=9, label="racing line")
    fig.colorbar(dots, ax=ax, label="speed, m/s")
    ax.plot(*line.xy_m[0], marker="o", color="red", ms=6, label="start")
    ax.set_aspect("equal")
    ax.set_xlabel("x, m")
    ax.set_ylabel("y, m")
    ax.set_title(f"{track.name}: optimal lap {line.lap_time_s:.2f} s (centerline {line.centerline.lap_time_s:.2f} s)")
    ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> dict:
    """Compute, drive, print and write; returns the figures printed."""
    from control.sim.base import DEEPRACER_LIMITS
    from control.sim.line_tracking import drive_line
    from control.sim.raceline import racing_line
    from control.track.track import Track

    track = Track.load(args.track)
    line = racing_line(track, DEEPRACER_LIMITS, margin_m=args.margin, use_cache=not args.no_cache)
    flying, standing = drive_line(line, track), drive_line(line, track, standing_start=True)
    figures = {
        "track": track.name, "length_m": track.length_m, "margin_m": line.margin_m,
        "centerline_lap_s": line.centerline.lap_time_s, "centerline_standing_lap_s": line.centerline.standing_start_lap_time_s,
        "optimal_lap_s": line.lap_time_s, "optimal_standing_lap_s": line.standing_start_lap_time_s,
        "tracked_lap_s": flying.lap_time_s, "tracked_standing_lap_s": standing.lap_time_s,
        "tracked_wheels_off_track_steps": flying.wheels_off_track_steps + standing.wheels_off_track_steps,
    }
    print(f"track {track.name}: {track.length_m:.2f} m, line kept {0.5 * line.limits.axle_track_m + line.margin_m:.3f} m "
          f"from each border (car half-width + margin {line.margin_m:.3f} m)")
    print(f"{'lap s':<14}{'flying':>8}{'standing':>10}")
    print(f"{'centerline':<14}{line.centerline.lap_time_s:>8.3f}{line.centerline.standing_start_lap_time_s:>10.3f}")
    print(f"{'optimal line':<14}{line.lap_time_s:>8.3f}{line.standing_start_lap_time_s:>10.3f}")
    print(f"{'tracked':<14}{flying.lap_time_s:>8.3f}{standing.lap_time_s:>10.3f}   "
          f"(+{flying.lap_time_s / line.lap_time_s - 1:.1%} / +{standing.lap_time_s / line.standing_start_lap_time_s - 1:.1%}, "
          f"wheels off track {figures['tracked_wheels_off_track_steps']} steps)")
    if args.out:
        written = write_line(line, Path(args.out), with_speed=args.with_speed)
        print("line:  " + ", ".join(str(p) for p in written))
    if args.plot:
        print(f"plot:  {plot_line(track, line, Path(args.plot))}")
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; a user error prints one line and returns 2."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
