"""`python -m control.bench tracks`: the generator's tracks next to real DeepRacer tracks, and each track's lap limits.

Per real or bundled track: length, tightest centerline radius, width range, the built-in car's
centerline lap and its optimal-line lap (the limit), flying and from a standing start. Per
generator profile: the distribution (percentiles over seeds) of tightest radius, width and
width variation along the lap, so a reader sees whether procedural training covers the real tracks.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHARED_TRACKS_DIR = Path(__file__).resolve().parents[3] / "shared" / "tracks"
PERCENTILES = (0, 5, 50, 95, 100)


@dataclass
class TrackShape:
    """What a policy has to handle on one track."""

    track: str
    length_m: float
    tightest_radius_m: float
    min_width_m: float
    max_width_m: float


def track_shape(track: Any) -> TrackShape:
    """Length, tightest centerline radius and width range of a track."""
    kappa = float(np.abs(track.curvature_per_m()).max())
    return TrackShape(track.name, float(track.length_m), 1.0 / kappa if kappa > 0 else float("inf"),
                      float(track.width_m.min()), float(track.width_m.max()))


def real_track_paths() -> list[Path]:
    """DeepRacer track files in ../shared/tracks (none when the folder is absent)."""
    return sorted(SHARED_TRACKS_DIR.glob("*.npy")) if SHARED_TRACKS_DIR.is_dir() else []


def reference_rows(with_optimal: bool = True) -> list[dict[str, Any]]:
    """Shape and lap references of every bundled track and every real track found."""
    from control.sim.base import DEEPRACER_LIMITS
    from control.sim.lap_time import lap_time_reference
    from control.track.track import Track, bundled_track_names

    rows = []
    for spec in [*bundled_track_names(), *map(str, real_track_paths())]:
        track = Track.load(spec)
        center = lap_time_reference(track, DEEPRACER_LIMITS)
        row = {**asdict(track_shape(track)), "source": "real" if spec.endswith(".npy") else "bundled",
               "centerline_lap_s": center.lap_time_s, "centerline_standing_lap_s": center.standing_start_lap_time_s}
        if with_optimal:
            from control.sim.raceline import racing_line

            line = racing_line(track, DEEPRACER_LIMITS)
            row.update(optimal_lap_s=line.lap_time_s, optimal_standing_lap_s=line.standing_start_lap_time_s)
        rows.append(row)
    return rows


def generator_distribution(profile: str, seeds: int) -> dict[str, Any]:
    """Percentiles over `seeds` generated tracks of one profile: tightest radius, widths, width variation."""
    from control.track.generate import generate_track

    shapes = [track_shape(generate_track(seed, profile=profile)) for seed in range(seeds)]
    columns = {
        "tightest_radius_m": [s.tightest_radius_m for s in shapes],
        "min_width_m": [s.min_width_m for s in shapes],
        "max_width_m": [s.max_width_m for s in shapes],
        "width_ratio": [s.max_width_m / s.min_width_m for s in shapes],
        "length_m": [s.length_m for s in shapes],
    }
    return {"profile": profile, "seeds": seeds,
            "percentiles": list(PERCENTILES),
            **{k: np.percentile(v, PERCENTILES).tolist() for k, v in columns.items()}}


def format_tracks(rows: list[dict[str, Any]], distributions: list[dict[str, Any]]) -> str:
    """The track table and the generator distributions."""
    header = (f"{'track':<20}{'source':>8}{'length m':>10}{'tightest r m':>13}{'width m':>12}"
              f"{'center s':>10}{'optimal s':>11}{'opt/center':>11}{'center std s':>13}{'optimal std s':>14}")
    lines = ["lap references of the built-in car (flying laps; std: from a standing start)", header, "-" * len(header)]
    for r in rows:
        opt, opt_std = r.get("optimal_lap_s"), r.get("optimal_standing_lap_s")
        ratio = None if opt is None else opt / r["centerline_lap_s"]
        lines.append(f"{r['track']:<20}{r['source']:>8}{r['length_m']:>10.2f}{r['tightest_radius_m']:>13.2f}"
                     f"{r['min_width_m']:>6.2f}-{r['max_width_m']:<5.2f}{r['centerline_lap_s']:>10.2f}"
                     f"{'-' if opt is None else f'{opt:.2f}':>11}{'-' if ratio is None else f'{ratio:.3f}':>11}"
                     f"{r['centerline_standing_lap_s']:>13.2f}{'-' if opt_std is None else f'{opt_std:.2f}':>14}")
    for d in distributions:
        pct = "/".join(f"p{p}" for p in d["percentiles"])
        lines.append("")
        lines.append(f"generator profile '{d['profile']}' over {d['seeds']} seeds ({pct})")
        for key in ("tightest_radius_m", "min_width_m", "max_width_m", "width_ratio", "length_m"):
            lines.append(f"  {key:<18}" + "".join(f"{v:>8.2f}" for v in d[key]))
    return "\n".join(lines)


def run_tracks_benchmark(seeds: int = 30, with_optimal: bool = True) -> dict[str, Any]:
    """The tracks benchmark: references of real and bundled tracks, and the generator's distributions."""
    from control.track.generate import GENERATOR_PROFILES

    rows = reference_rows(with_optimal=with_optimal)
    distributions = [generator_distribution(name, seeds) for name in GENERATOR_PROFILES]
    print(format_tracks(rows, distributions), flush=True)
    return {"tracks": rows, "generator": distributions}
