"""DeepRacer-style evaluation metrics: per episode and aggregated, as a printed table and as JSON.

Each completed lap is compared with two references of the same car on the same track: the
grip-limited centerline lap (`vs centerline`) and the minimum-time racing line, the limit
(`vs optimal`), and always like with like: an episode's first lap starts from rest at the
episode's start point, so it is compared with the standing-start reference from that point;
later laps start at speed and are compared with the flying-lap references.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from control.rollout.episodes import EpisodeRecord


@dataclass(frozen=True)
class ReferencePath:
    """One reference path around a track (the centerline or the racing line) and its flying lap."""

    name: str  # "centerline" | "optimal"
    xy_m: np.ndarray  # (M, 2) the path's points
    curvature_per_m: np.ndarray  # (M,)
    segment_length_m: np.ndarray  # (M,) point i -> i+1, wrapping
    flying_lap_s: float
    limits: Any  # the VehicleLimits the reference is for

    def standing_start_lap_s(self, start_xy_m: tuple[float, float]) -> float:
        """One lap from rest at the path point nearest `start_xy_m` (the episode's start)."""
        from control.sim.lap_time import lap_time_from_arrays

        k = int(np.argmin(np.hypot(self.xy_m[:, 0] - start_xy_m[0], self.xy_m[:, 1] - start_xy_m[1])))
        rolled = lap_time_from_arrays(np.roll(self.curvature_per_m, -k), np.roll(self.segment_length_m, -k), self.limits)
        return rolled.standing_start_lap_time_s


def _path(name: str, track: Any, limits: Any) -> ReferencePath:
    from control.sim.lap_time import lap_time_reference

    ref = lap_time_reference(track, limits)
    return ReferencePath(name, track.center_m, track.curvature_per_m(), ref.segment_length_m, ref.lap_time_s, limits)


def lap_references(track: Any, limits: Any, optimal: bool = True) -> dict[str, ReferencePath]:
    """The centerline and (optimal=True) racing-line references of `track` for a car with `limits`."""
    refs = {"centerline": _path("centerline", track, limits)}
    if optimal:
        from control.sim.raceline import racing_line
        from control.track.track import Track

        line = racing_line(track, limits)
        refs["optimal"] = _path("optimal", Track(line.xy_m, width_m=0.1, name=f"{track.name}_line"), limits)
    return refs


def _as_references(references: Any) -> dict[str, Any]:
    """References as {name: ReferencePath | flying lap s}; a bare number is the centerline flying lap (older callers)."""
    if references is None:
        return {}
    if isinstance(references, (int, float)):
        return {"centerline": float(references)} if references else {}
    return dict(references)


def _reference_s(ref: Any, standing: bool, start_xy_m: tuple[float, float]) -> float:
    """A reference's lap time for a lap of the given start type."""
    if isinstance(ref, ReferencePath):
        return ref.standing_start_lap_s(start_xy_m) if standing else ref.flying_lap_s
    return float(ref)  # a bare number is a flying lap: no standing-start figure to offer


def lap_rows(record: EpisodeRecord, references: Any = None) -> list[dict[str, Any]]:
    """Each completed lap of an episode against every reference of its own start type."""
    refs = _as_references(references)
    rows = []
    for i, lap_s in enumerate(record.lap_times_s):
        standing = i == 0  # the first lap starts from rest at the episode's start; later ones at speed
        row: dict[str, Any] = {"lap": i + 1, "start": "standing" if standing else "flying", "lap_time_s": lap_s}
        for name, ref in refs.items():
            if not standing or isinstance(ref, ReferencePath):
                ref_s = _reference_s(ref, standing, record.start_xy_m)
                row[f"{name}_s"], row[f"vs_{name}"] = ref_s, lap_s / ref_s
        rows.append(row)
    return rows


def episode_metrics(record: EpisodeRecord, references: Any = None) -> dict[str, Any]:
    """One episode's metrics; lap_time_s is present (not None) only when a lap was completed.

    `references`: lap_references(...) (or a bare number: the centerline flying lap, older callers).
    """
    s = record.steps
    lap_time_s = record.lap_times_s[0] if record.lap_times_s else None
    # Completion of the lap in progress, 100 for a completed lap (DeepRacer's "progress" at the end).
    completion_pct = 100.0 if record.lap_times_s else float(np.clip(s["progress"].max(initial=0.0), 0.0, 100.0))
    speed = s["speed_mps"]
    out: dict[str, Any] = {
        "episode": record.index,
        "track": record.track_name,
        "status": record.status,
        "steps": record.num_steps,
        "elapsed_time_s": float(s["time_s"][-1]) if record.num_steps else 0.0,
        "completion_pct": completion_pct,
        "lap_completed": bool(record.lap_times_s),
        "lap_time_s": lap_time_s,
        "lap_times_s": list(record.lap_times_s),
        "off_track_count": record.off_track_count,
        "crash_count": record.crash_count,
        "reversed_count": record.reversed_count,
        "reset_count": record.reset_count,
        "penalty_s": record.penalty_s,  # continuous mode: every reset's penalty, already in the lap times
        "mean_speed_mps": float(speed.mean()) if speed.size else 0.0,
        "max_speed_mps": float(speed.max()) if speed.size else 0.0,
        "total_reward": float(s["reward"].sum()),
    }
    if record.race_type == "head_to_bot":
        out.update(overtake_metrics(record))
    refs = _as_references(references)
    laps = lap_rows(record, refs)
    out["laps"] = laps
    for name in refs:
        # The episode's first lap against the reference of its own start type (None: no lap, or no such figure).
        out[f"vs_{name}"] = laps[0].get(f"vs_{name}") if laps else None
    centerline = refs.get("centerline")
    if centerline is not None:
        # Kept for older readers: the first lap over the centerline *flying* lap (not like with like).
        flying_s = centerline.flying_lap_s if isinstance(centerline, ReferencePath) else float(centerline)
        out["lap_time_vs_reference"] = lap_time_s / flying_s if lap_time_s is not None else None
    return out


def overtake_metrics(record: EpisodeRecord) -> dict[str, Any]:
    """Head-to-bot: bots passed, times passed by a bot, their difference, and whether every bot ended behind the car."""
    net = [a - b for a, b in zip(record.bots_passed, record.passed_by_bots, strict=True)]
    return {"bots_passed": int(sum(record.bots_passed)), "passed_by_bots": int(sum(record.passed_by_bots)),
            "overtakes": int(sum(net)), "bots_passed_per_bot": list(record.bots_passed),
            "every_bot_overtaken": bool(net) and min(net) >= 1}


def aggregate_metrics(episodes: list[dict[str, Any]], references: Any = None) -> dict[str, Any]:
    """Laps completed / episodes, best and mean lap time, mean completion, totals of the events."""
    laps = [e["lap_time_s"] for e in episodes if e["lap_time_s"] is not None]
    out: dict[str, Any] = {
        "episodes": len(episodes),
        "laps_completed": len(laps),
        "lap_completion_rate": len(laps) / len(episodes) if episodes else 0.0,
        "best_lap_time_s": min(laps) if laps else None,
        "mean_lap_time_s": float(np.mean(laps)) if laps else None,
        "mean_completion_pct": float(np.mean([e["completion_pct"] for e in episodes])) if episodes else 0.0,
        "off_track_count": int(sum(e["off_track_count"] for e in episodes)),
        "crash_count": int(sum(e["crash_count"] for e in episodes)),
        "reset_count": int(sum(e["reset_count"] for e in episodes)),
        "crash_free_episodes": int(sum(e["crash_count"] == 0 for e in episodes)),
        "crash_free_rate": sum(e["crash_count"] == 0 for e in episodes) / len(episodes) if episodes else 0.0,
        "penalty_s": float(sum(e.get("penalty_s", 0.0) for e in episodes)),
        "mean_speed_mps": float(np.mean([e["mean_speed_mps"] for e in episodes])) if episodes else 0.0,
        "max_speed_mps": max((e["max_speed_mps"] for e in episodes), default=0.0),
        "mean_total_reward": float(np.mean([e["total_reward"] for e in episodes])) if episodes else 0.0,
    }
    if any("overtakes" in e for e in episodes):  # head-to-bot
        out["overtakes"] = int(sum(e["overtakes"] for e in episodes))
        out["every_bot_overtaken_rate"] = sum(e["every_bot_overtaken"] for e in episodes) / len(episodes)
    refs = _as_references(references)
    flying = {n: (r.flying_lap_s if isinstance(r, ReferencePath) else float(r)) for n, r in refs.items()}
    # The centerline flying lap, as before (older readers); the like-with-like figures are below.
    out["reference_lap_time_s"] = flying.get("centerline")
    out["reference_flying_lap_s"] = flying
    if flying.get("centerline") and laps:
        out["best_lap_vs_reference"] = min(laps) / flying["centerline"]
    all_laps = [lap for e in episodes for lap in e.get("laps", [])]
    for name in refs:
        # The best ratio over every lap, each against the reference of its own start type.
        ratios = [lap[f"vs_{name}"] for lap in all_laps if f"vs_{name}" in lap]
        out[f"best_vs_{name}"] = min(ratios) if ratios else None
    for start in ("standing", "flying"):
        times = [lap["lap_time_s"] for lap in all_laps if lap["start"] == start]
        out[f"best_{start}_lap_s"] = min(times) if times else None
    return out


def build_report(records: list[EpisodeRecord], references: Any, context: dict[str, Any]) -> dict[str, Any]:
    """The metrics JSON: context (checkpoint, track, mode), per-episode rows and the aggregate."""
    rows = [episode_metrics(r, references) for r in records]
    return {**context, "episodes": rows, "aggregate": aggregate_metrics(rows, references)}


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write the metrics JSON (indented, None as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The per-episode table and the aggregate line, as DeepRacer's evaluation page shows them.

    `vs center` and `vs optimal` are the episode's first lap (from a standing start) over the
    standing-start references from its start point; flying laps appear in the aggregate line.
    """
    header = f"{'ep':>3} {'status':<13} {'complete %':>10} {'lap time s':>10} {'vs center':>9} {'vs optimal':>10} " \
             f"{'off track':>9} {'crashes':>7} {'resets':>6} {'penalty s':>9} {'overtakes':>9} {'mean m/s':>8} {'max m/s':>7} " \
             f"{'reward':>9}"
    lines = [header, "-" * len(header)]
    for e in report["episodes"]:
        lines.append(f"{e['episode']:>3} {e['status']:<13} {e['completion_pct']:>10.1f} {_fmt(e['lap_time_s']):>10} "
                     f"{_fmt(e.get('vs_centerline'), '.3f'):>9} {_fmt(e.get('vs_optimal'), '.3f'):>10} "
                     f"{e['off_track_count']:>9} {e['crash_count']:>7} {e['reset_count']:>6} {e.get('penalty_s', 0.0):>9.1f} "
                     f"{_fmt(e.get('overtakes'), 'd'):>9} {e['mean_speed_mps']:>8.2f} {e['max_speed_mps']:>7.2f} "
                     f"{e['total_reward']:>9.2f}")
    a = report["aggregate"]
    lines.append("-" * len(header))
    lines.append(f"laps completed {a['laps_completed']}/{a['episodes']}   best lap {_fmt(a['best_lap_time_s'])} s   "
                 f"mean lap {_fmt(a['mean_lap_time_s'])} s   mean completion {a['mean_completion_pct']:.1f} %   "
                 f"crash-free {a.get('crash_free_episodes', 0)}/{a['episodes']}")
    if "overtakes" in a:
        lines.append(f"overtakes {a['overtakes']} (bots passed minus passed by bots)   "
                     f"every bot overtaken in {a['every_bot_overtaken_rate']:.0%} of episodes")
    flying = a.get("reference_flying_lap_s") or {}
    if flying:
        refs = ", ".join(f"{name} {value:.2f} s" for name, value in flying.items())
        best = "   ".join(f"best vs {name} {_fmt(a.get(f'best_vs_{name}'), '.3f')}" for name in flying)
        lines.append(f"flying-lap references: {refs}   (each lap against its own start type)   {best}")
    return "\n".join(lines)
