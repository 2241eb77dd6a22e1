"""Lap quality and generalisation: train for a fixed time, then roll the final policy out deterministically.

--quality: the best lap against the track's lap-time references, the grip-limited centerline lap
(control/sim/lap_time.py) and the optimal racing line, the limit (control/sim/raceline.py), each lap
against the reference of its own start type; episodes run two laps so the second is a flying lap.
--generalisation: a policy trained on procedural tracks drives every bundled track (none seen in
training); its lap rate per track.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from control.bench.training_runs import (
    PROCEDURAL_CONFIG,
    VLIDAR_CONFIG,
    benchmark_dir,
    config_path,
    display_path,
    format_optional,
    machine_description,
    train_config,
)

QUALITY_GOAL_RATIO = 1.10  # best lap within 10 % of the centerline reference (issue 7)
OPTIMAL_GOAL_RATIO = 1.05  # best lap within 5 % of the optimal-line lap, the limit (issue 14)
QUALITY_LAPS = 2  # per rollout episode: the second lap starts at speed, like the flying-lap reference


def lap_time_ratio(best_lap_s: float | None, reference_s: float) -> float | None:
    """best lap / reference lap time (< 1: faster than the centerline reference); None when no lap was driven."""
    if not (math.isfinite(reference_s) and reference_s > 0):
        raise ValueError(f"reference lap time must be a positive number of seconds, got {reference_s!r}")
    if best_lap_s is None:
        return None
    if not (math.isfinite(best_lap_s) and best_lap_s > 0):
        raise ValueError(f"best lap time must be a positive number of seconds, got {best_lap_s!r}")
    return best_lap_s / reference_s


@dataclass
class TrackRollout:
    """Deterministic episodes of one policy on one track."""

    track: str
    episodes: int
    laps_completed: int  # episodes whose first lap was completed
    lap_times_s: list[float] = field(default_factory=list)  # every completed lap, flying laps included
    reference_lap_s: float = float("nan")  # centerline flying lap
    mean_completion_pct: float = 0.0
    optimal_lap_s: float | None = None  # optimal-line flying lap (the limit)
    # Best lap over the reference of its own start type (standing first laps, flying later ones).
    best_vs_centerline: float | None = None
    best_vs_optimal: float | None = None

    @property
    def lap_rate(self) -> float:
        return self.laps_completed / self.episodes if self.episodes else 0.0

    @property
    def best_lap_s(self) -> float | None:
        return min(self.lap_times_s) if self.lap_times_s else None

    @property
    def ratio(self) -> float | None:
        """Best lap over the centerline reference, like with like when the laps were rated per start type."""
        if self.best_vs_centerline is not None:
            return self.best_vs_centerline
        return lap_time_ratio(self.best_lap_s, self.reference_lap_s)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lap_rate": self.lap_rate, "best_lap_s": self.best_lap_s, "ratio": self.ratio}


def roll_out(checkpoint: Path, episodes: int, *, track: str | None = None, laps: int = 1,
             seed: int | None = 0) -> TrackRollout:
    """Roll the checkpoint's policy out deterministically for `episodes` episodes of `laps` laps each."""
    from control.rollout import inference
    from control.rollout.episodes import run_episodes
    from control.rollout.metrics import aggregate_metrics, episode_metrics, lap_references

    run = inference.load_run_config(checkpoint)
    overrides: dict[str, Any] = {"termination": {"laps": laps}}
    if track is not None:
        overrides["track"] = track
    env = inference.make_env(run, overrides, render=False)
    try:
        references = lap_references(env.track, env.limits)
        reference_s = references["centerline"].flying_lap_s
        # Enough steps for every lap at a third of the reference pace.
        steps = max(int(env.config["max_episode_steps"]), math.ceil(3 * laps * reference_s * env.control_hz))
        env.close()
        env = inference.make_env(run, {**overrides, "max_episode_steps": steps}, render=False)
        policy = inference.Policy(checkpoint, explore=False, observation_filter=run.observation_filter)
        policy.check_env(env, f"{run.env}, track {env.track.name}")
        records = run_episodes(env, policy, episodes, seed=seed, progress_bar=False)
        rows = [episode_metrics(r, references) for r in records]
        aggregate = aggregate_metrics(rows, references)
        return TrackRollout(
            track=env.track.name, episodes=len(records), laps_completed=sum(bool(r.lap_times_s) for r in records),
            lap_times_s=[t for r in records for t in r.lap_times_s], reference_lap_s=reference_s,
            mean_completion_pct=sum(r["completion_pct"] for r in rows) / len(rows),
            optimal_lap_s=references["optimal"].flying_lap_s, best_vs_centerline=aggregate["best_vs_centerline"],
            best_vs_optimal=aggregate["best_vs_optimal"])
    finally:
        env.close()


def run_quality(config: Path, results_dir: Path, *, minutes: float, all_tracks: bool = False, episodes: int = 5,
                seed: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train `config` for `minutes` (one policy per bundled track with all_tracks), roll out, compare to the reference."""
    from control.track.track import bundled_track_names

    tracks: list[str | None] = list(bundled_track_names()) if all_tracks else [None]
    rows: list[dict[str, Any]] = []
    for track in tracks:
        label = track or "the config's track"
        print(f"quality: training {config.name} on {label} for {minutes:g} min", flush=True)
        extra = [f"env_config.track={track}"] if track else []
        run = train_config(config, results_dir, f"quality_{track or 'default'}", progress_pct=None,
                           cap_s=minutes * 60.0, overrides=[*(overrides or []), *extra], seed=seed)
        if run.checkpoint is None:
            raise RuntimeError(f"the quality run on {label} saved no checkpoint")
        rollout = roll_out(run.checkpoint, episodes, track=track, laps=QUALITY_LAPS, seed=0)
        last = run.rows[-1]
        rows.append({**rollout.as_dict(), "training_min": float(last["time_total_s"]) / 60.0,
                     "iterations": int(last["training_iteration"]),
                     "env_steps": int(last["num_env_steps_sampled_lifetime"])})
    out = {"machine": machine_description(), "config": display_path(config), "minutes": minutes, "episodes": episodes,
           "laps_per_episode": QUALITY_LAPS, "goal_ratio": QUALITY_GOAL_RATIO, "optimal_goal_ratio": OPTIMAL_GOAL_RATIO,
           "tracks": rows}
    print(format_quality(out), flush=True)
    return out


def format_quality(out: dict[str, Any]) -> str:
    """Per track: best deterministic lap, both references, the ratios and whether they meet the goals.

    Ratios are like with like: each lap over the reference of its own start type (standing or flying).
    """
    optimal_goal = out.get("optimal_goal_ratio", OPTIMAL_GOAL_RATIO)
    header = (f"{'track':<12}{'train min':>10}{'laps done':>11}{'optimal s':>11}{'vs optimal':>11}{f'<= {optimal_goal:.2f}':>8}"
              f"{'best lap s':>12}{'reference s':>13}{'ratio':>8}  goal <= {out['goal_ratio']:.2f}")
    lines = [f"machine: {out['machine']}", f"config:  {out['config']}  ({out['episodes']} deterministic episodes "
             f"of {out['laps_per_episode']} laps per track; reference: centerline, optimal: the racing line, the limit)",
             header, "-" * len(header)]
    for r in out["tracks"]:
        ratio, vs_optimal = r["ratio"], r.get("best_vs_optimal")
        verdict = "-" if ratio is None else ("met" if ratio <= out["goal_ratio"] else "missed")
        optimal_verdict = "-" if vs_optimal is None else ("met" if vs_optimal <= optimal_goal else "missed")
        lines.append(f"{r['track']:<12}{r['training_min']:>10.1f}{len(r['lap_times_s']):>11d}"
                     f"{format_optional(r.get('optimal_lap_s'), '>11.2f')}{format_optional(vs_optimal, '>11.3f')}{optimal_verdict:>8}"
                     f"{format_optional(r['best_lap_s'], '>12.2f')}{r['reference_lap_s']:>13.2f}{format_optional(ratio, '>8.3f')}  {verdict}")
    return "\n".join(lines)


def run_generalisation(config: Path, results_dir: Path, *, minutes: float, episodes: int = 5,
                       seed: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train `config` (procedural tracks) for `minutes`, then its lap rate on every bundled track."""
    from control.track.track import bundled_track_names

    print(f"generalisation: training {config.name} for {minutes:g} min", flush=True)
    run = train_config(config, results_dir, "generalisation", progress_pct=None, cap_s=minutes * 60.0,
                       overrides=overrides, seed=seed)
    if run.checkpoint is None:
        raise RuntimeError("the generalisation run saved no checkpoint")
    last = run.rows[-1]
    rows = [roll_out(run.checkpoint, episodes, track=track, laps=1, seed=0).as_dict() for track in bundled_track_names()]
    out = {"machine": machine_description(), "config": display_path(config), "minutes": minutes, "episodes": episodes,
           "training_min": float(last["time_total_s"]) / 60.0, "iterations": int(last["training_iteration"]),
           "env_steps": int(last["num_env_steps_sampled_lifetime"]), "tracks": rows}
    print(format_generalisation(out), flush=True)
    return out


def format_generalisation(out: dict[str, Any]) -> str:
    """Per bundled track: lap rate, mean completion and best lap of the procedural policy."""
    header = f"{'track':<12}{'lap rate':>10}{'completion %':>14}{'best lap s':>12}{'reference s':>13}{'vs center':>10}{'vs optimal':>11}"
    lines = [f"machine: {out['machine']}",
             f"config:  {out['config']}  trained {out['training_min']:.1f} min, {out['iterations']} iterations, "
             f"{out['env_steps']} env steps; {out['episodes']} deterministic episodes per track (tracks never trained on)",
             header, "-" * len(header)]
    for r in out["tracks"]:
        lines.append(f"{r['track']:<12}{r['laps_completed']:>5d}/{r['episodes']:<4d}{r['mean_completion_pct']:>14.1f}"
                     f"{format_optional(r['best_lap_s'], '>12.2f')}{r['reference_lap_s']:>13.2f}"
                     f"{format_optional(r.get('best_vs_centerline'), '>10.3f')}{format_optional(r.get('best_vs_optimal'), '>11.3f')}")
    return "\n".join(lines)


def run_lap_quality_benchmark(*, config: str | None = None, quality: bool = False, all_tracks: bool = False,
                              generalisation: bool = False, minutes: float = 15.0, episodes: int = 5,
                              bench_dir: str | None = None, seed: int | None = None) -> dict[str, Any]:
    """The `train --quality` and/or `train --generalisation` benchmarks, in a benchmark folder."""
    with benchmark_dir(bench_dir) as folder:
        results: dict[str, Any] = {}
        if quality:
            results["quality"] = run_quality(config_path(config, VLIDAR_CONFIG), folder, minutes=minutes,
                                             all_tracks=all_tracks, episodes=episodes, seed=seed)
        if generalisation:
            results["generalisation"] = run_generalisation(config_path(config, PROCEDURAL_CONFIG), folder,
                                                           minutes=minutes, episodes=episodes, seed=seed)
        return results
