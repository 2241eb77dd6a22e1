"""DeepRacer-style evaluation metrics: per episode and aggregated, as a printed table and as JSON."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from control.rollout.episodes import EpisodeRecord


def episode_metrics(record: EpisodeRecord, reference_lap_time_s: float | None = None) -> dict[str, Any]:
    """One episode's metrics; lap_time_s is present (not None) only when a lap was completed."""
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
        "mean_speed_mps": float(speed.mean()) if speed.size else 0.0,
        "max_speed_mps": float(speed.max()) if speed.size else 0.0,
        "total_reward": float(s["reward"].sum()),
    }
    if reference_lap_time_s:
        out["lap_time_vs_reference"] = lap_time_s / reference_lap_time_s if lap_time_s is not None else None
    return out


def aggregate_metrics(episodes: list[dict[str, Any]], reference_lap_time_s: float | None = None) -> dict[str, Any]:
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
        "mean_speed_mps": float(np.mean([e["mean_speed_mps"] for e in episodes])) if episodes else 0.0,
        "max_speed_mps": max((e["max_speed_mps"] for e in episodes), default=0.0),
        "mean_total_reward": float(np.mean([e["total_reward"] for e in episodes])) if episodes else 0.0,
        "reference_lap_time_s": reference_lap_time_s,
    }
    if reference_lap_time_s and laps:
        out["best_lap_vs_reference"] = min(laps) / reference_lap_time_s
    return out


def build_report(records: list[EpisodeRecord], reference_lap_time_s: float | None, context: dict[str, Any]) -> dict[str, Any]:
    """The metrics JSON: context (checkpoint, track, mode), per-episode rows and the aggregate."""
    rows = [episode_metrics(r, reference_lap_time_s) for r in records]
    return {**context, "episodes": rows, "aggregate": aggregate_metrics(rows, reference_lap_time_s)}


def write_report(report: dict[str, Any], path: Path) -> Path:
    """Write the metrics JSON (indented, None as null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=float) + "\n")
    return path


def _fmt(value: Any, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def format_table(report: dict[str, Any]) -> str:
    """The per-episode table and the aggregate line, as DeepRacer's evaluation page shows them."""
    header = f"{'ep':>3} {'status':<13} {'complete %':>10} {'lap time s':>10} {'off track':>9} {'crashes':>7} " \
             f"{'resets':>6} {'mean m/s':>8} {'max m/s':>7} {'reward':>9}"
    lines = [header, "-" * len(header)]
    for e in report["episodes"]:
        lines.append(f"{e['episode']:>3} {e['status']:<13} {e['completion_pct']:>10.1f} {_fmt(e['lap_time_s']):>10} "
                     f"{e['off_track_count']:>9} {e['crash_count']:>7} {e['reset_count']:>6} "
                     f"{e['mean_speed_mps']:>8.2f} {e['max_speed_mps']:>7.2f} {e['total_reward']:>9.2f}")
    a = report["aggregate"]
    lines.append("-" * len(header))
    ref = a.get("reference_lap_time_s")
    lines.append(f"laps completed {a['laps_completed']}/{a['episodes']}   best lap {_fmt(a['best_lap_time_s'])} s   "
                 f"mean lap {_fmt(a['mean_lap_time_s'])} s   mean completion {a['mean_completion_pct']:.1f} %"
                 + (f"   reference lap {ref:.2f} s" if ref else ""))
    return "\n".join(lines)
