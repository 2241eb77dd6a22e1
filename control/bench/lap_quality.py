"""Lap quality and generalisation: train for a fixed time, then roll the final policy out deterministically.

--quality: the best lap against the track's lap-time references, the grip-limited centerline lap
(control/sim/lap_time.py) and the optimal racing line, the limit (control/sim/raceline.py), each lap
against the reference of its own start type; episodes run two laps so the second is a flying lap.
--generalisation: a policy trained on procedural tracks drives every bundled track and every
`../shared/tracks/*.npy` (none seen in training); its lap rate per track against the 90 % target
(issue 13). --camera trains the procedural camera config instead of the vlidar one; --appearance
also drives the same tracks, same seeds, under the "unseen" looks (control.sim.appearance.unseen_appearance:
colours and lighting outside the training's randomisation ranges), so the two lap rates differ by the looks only.
--race object_avoidance / head_to_bot: the shipped race config trained for --minutes, then deterministic
episodes with the objects as trained against issue 12's targets: object avoidance, the crash-free lap rate
and the best lap over the same policy's time-trial lap (race.type time_trial, same seeds); head-to-bot, the
laps with no crash and with every bot overtaken.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from control.bench.training_runs import (
    CONFIGS_DIR,
    PROCEDURAL_CONFIG,
    REPO_ROOT,
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
GENERALISATION_GOAL_RATE = 0.90  # of deterministic episodes lap on tracks (and under looks) never trained on (issue 13)
CAMERA_PROCEDURAL_CONFIG = CONFIGS_DIR / "ppo_camera_procedural_config.yaml"
SHARED_TRACKS_DIR = REPO_ROOT.parent / "shared" / "tracks"  # real DeepRacer tracks, when the machine has them
RACE_CONFIGS = {"object_avoidance": CONFIGS_DIR / "ppo_object_avoidance_config.yaml",
                "head_to_bot": CONFIGS_DIR / "ppo_head_to_bot_config.yaml"}
# Issue 12's targets.
CRASH_FREE_GOAL_RATE = 0.90  # object avoidance: deterministic episodes that finish the lap without a crash
OBJECTS_LAP_GOAL_RATIO = 1.20  # object avoidance: best lap with the boxes over the same policy's time-trial best lap
BOTS_GOAL_RATE = 0.80  # head-to-bot: laps with no crash and every bot overtaken


def generalisation_tracks(shared_dir: Path = SHARED_TRACKS_DIR) -> list[str]:
    """Every bundled track's name, then every `shared_dir/*.npy` path (sorted; none when the folder is absent)."""
    from control.track.track import bundled_track_names

    shared = sorted(str(p) for p in shared_dir.glob("*.npy")) if shared_dir.is_dir() else []
    return [*bundled_track_names(), *shared]


def unseen_observation(observation: dict[str, Any]) -> dict[str, Any]:
    """A camera run's observation section with its randomize section replaced by the unseen looks."""
    from control.errors import UserError
    from control.sim.appearance import unseen_appearance

    kind = observation.get("type")
    if kind == "camera":
        return {**observation, "randomize": unseen_appearance(observation.get("randomize") or {})}
    if kind == "both":
        camera = dict(observation.get("camera") or {})
        return {**observation, "camera": {**camera, "randomize": unseen_appearance(camera.get("randomize") or {})}}
    raise UserError(f"--appearance needs a camera policy; the run's observation type is {kind!r}: use --camera or a "
                    f"config with observation type camera or both")


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
    race_type: str = "time_trial"
    crash_free_laps: int = 0  # episodes whose first lap was completed without a crash
    overtaking_laps: int | None = None  # head-to-bot: crash-free laps with every bot overtaken; None in other races

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

    @property
    def crash_free_lap_rate(self) -> float:
        """Share of the episodes that completed the lap without a crash."""
        return self.crash_free_laps / self.episodes if self.episodes else 0.0

    @property
    def overtaking_lap_rate(self) -> float | None:
        """Head-to-bot: share of the episodes with a crash-free lap and every bot overtaken; None in other races."""
        if self.overtaking_laps is None:
            return None
        return self.overtaking_laps / self.episodes if self.episodes else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lap_rate": self.lap_rate, "best_lap_s": self.best_lap_s, "ratio": self.ratio,
                "crash_free_lap_rate": self.crash_free_lap_rate, "overtaking_lap_rate": self.overtaking_lap_rate}


def roll_out(checkpoint: Path, episodes: int, *, track: str | None = None, laps: int = 1,
             seed: int | None = 0, observation: dict[str, Any] | None = None, race_type: str | None = None) -> TrackRollout:
    """Roll the checkpoint's policy out deterministically for `episodes` episodes of `laps` laps each.

    `observation` replaces the run's observation section (same spaces, other looks: --appearance);
    `race_type` the run's race type (time_trial: the same policy without its objects).
    """
    from control.rollout import inference
    from control.rollout.episodes import run_episodes
    from control.rollout.metrics import aggregate_metrics, episode_metrics, lap_references

    run = inference.load_run_config(checkpoint)
    if observation is not None:  # make_env takes the run's observation section whole, never merged with overrides
        run = dataclasses.replace(run, env_config={**run.env_config, "observation": observation})
    overrides: dict[str, Any] = {"termination": {"laps": laps}}
    if track is not None:
        overrides["track"] = track
    if race_type is not None:
        overrides["race"] = {"type": race_type}
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
            best_vs_optimal=aggregate["best_vs_optimal"], race_type=records[0].race_type if records else "time_trial",
            crash_free_laps=sum(r["lap_completed"] and r["crash_count"] == 0 for r in rows),
            overtaking_laps=(sum(r["lap_completed"] and r["crash_count"] == 0 and r["every_bot_overtaken"] for r in rows)
                             if any("every_bot_overtaken" in r for r in rows) else None))
    finally:
        env.close()


def run_quality(config: Path, results_dir: Path, *, minutes: float, all_tracks: bool = False, episodes: int = 5,
                seed: int | None = None, overrides: list[str] | None = None, reward: str | None = None) -> dict[str, Any]:
    """Train `config` for `minutes` (one policy per bundled track with all_tracks), roll out, compare to the reference.

    reward: train with this env_config.reward instead of the config's (`--quality --reward`).
    """
    from control.track.track import bundled_track_names

    tracks: list[str | None] = list(bundled_track_names()) if all_tracks else [None]
    rows: list[dict[str, Any]] = []
    for track in tracks:
        label = track or "the config's track"
        print(f"quality: training {config.name} on {label} for {minutes:g} min", flush=True)
        extra = ([f"env_config.track={track}"] if track else []) + ([f"env_config.reward={reward}"] if reward else [])
        run = train_config(config, results_dir, f"quality_{track or 'default'}", progress_pct=None,
                           cap_s=minutes * 60.0, overrides=[*(overrides or []), *extra], seed=seed)
        if run.checkpoint is None:
            raise RuntimeError(f"the quality run on {label} saved no checkpoint")
        rollout = roll_out(run.checkpoint, episodes, track=track, laps=QUALITY_LAPS, seed=0)
        last = run.rows[-1]
        rows.append({**rollout.as_dict(), "training_min": float(last["time_total_s"]) / 60.0,
                     "iterations": int(last["training_iteration"]),
                     "env_steps": int(last["num_env_steps_sampled_lifetime"])})
    out = {"machine": machine_description(), "config": display_path(config) + (f" with reward {reward}" if reward else ""),
           "minutes": minutes, "episodes": episodes,
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
                       seed: int | None = None, overrides: list[str] | None = None, appearance: bool = False,
                       tracks: list[str] | None = None) -> dict[str, Any]:
    """Train `config` (procedural tracks) for `minutes`, then its lap rate on every unseen track (and under unseen looks)."""
    if appearance:  # a policy without a camera has no looks: say so before the minutes of training
        unseen_observation(_config_observation(config))
    print(f"generalisation: training {config.name} for {minutes:g} min", flush=True)
    run = train_config(config, results_dir, "generalisation", progress_pct=None, cap_s=minutes * 60.0,
                       overrides=overrides, seed=seed)
    if run.checkpoint is None:
        raise RuntimeError("the generalisation run saved no checkpoint")
    last = run.rows[-1]
    out = {"machine": machine_description(), "config": display_path(config), "minutes": minutes, "episodes": episodes,
           "training_min": float(last["time_total_s"]) / 60.0, "iterations": int(last["training_iteration"]),
           "env_steps": int(last["num_env_steps_sampled_lifetime"]), "goal_rate": GENERALISATION_GOAL_RATE}
    out.update(evaluate_generalisation(run.checkpoint, episodes, appearance=appearance, tracks=tracks))
    print(format_generalisation(out), flush=True)
    return out


def evaluate_generalisation(checkpoint: Path, episodes: int, *, appearance: bool = False,
                            tracks: list[str] | None = None) -> dict[str, Any]:
    """Deterministic episodes of the checkpoint's policy on each track (default: generalisation_tracks()).

    With appearance, the same tracks and seeds again under the unseen looks. Lap rates are over all episodes.
    """
    from control.rollout.inference import load_run_config

    tracks = generalisation_tracks() if tracks is None else tracks
    rows = [roll_out(checkpoint, episodes, track=track, laps=1, seed=0).as_dict() for track in tracks]
    out: dict[str, Any] = {"tracks": rows, "lap_rate": _overall_rate(rows)}
    if appearance:
        looks = unseen_observation(dict(load_run_config(checkpoint).env_config.get("observation") or {}))
        unseen = [roll_out(checkpoint, episodes, track=track, laps=1, seed=0, observation=looks).as_dict() for track in tracks]
        out.update(unseen_looks=looks, unseen_tracks=unseen, unseen_lap_rate=_overall_rate(unseen))
    return out


def _config_observation(config: Path) -> dict[str, Any]:
    """The observation section a training config's env gets (its env id's defaults under the config's own)."""
    from control.env.registration import ENV_IDS
    from control.training.config_loader import load_config_file

    raw = load_config_file(config)
    own = (raw.get("env_config") or {}).get("observation")
    return dict(own) if own else dict(ENV_IDS.get(str(raw.get("env")), {}).get("observation") or {})


def _config_race_type(config: Path) -> str:
    """The race type a training config's env gets (env_config.race.type; time_trial without one)."""
    from control.training.config_loader import load_config_file

    race = (load_config_file(config).get("env_config") or {}).get("race") or {}
    return str(race.get("type", "time_trial"))


def _overall_rate(rows: list[dict[str, Any]]) -> float:
    episodes = sum(r["episodes"] for r in rows)
    return sum(r["laps_completed"] for r in rows) / episodes if episodes else 0.0


def _verdict(rate: float, goal: float) -> str:
    return f"{100 * rate:.0f} % of episodes lap; target >= {100 * goal:.0f} % -> {'met' if rate >= goal else 'missed'}"


def format_generalisation(out: dict[str, Any]) -> str:
    """Per unseen track: lap rate, mean completion and best lap of the procedural policy; the 90 % target lines."""
    goal = out.get("goal_rate", GENERALISATION_GOAL_RATE)
    unseen = {r["track"]: r for r in out.get("unseen_tracks", [])}
    header = (f"{'track':<20}{'lap rate':>10}{'completion %':>14}{'best lap s':>12}{'reference s':>13}{'vs center':>10}"
              f"{'vs optimal':>11}" + (f"{'unseen looks':>14}" if unseen else ""))
    lines = [f"machine: {out['machine']}",
             f"config:  {out['config']}  trained {out['training_min']:.1f} min, {out['iterations']} iterations, "
             f"{out['env_steps']} env steps; {out['episodes']} deterministic episodes per track (tracks never trained on)",
             header, "-" * len(header)]
    for r in out["tracks"]:
        u = unseen.get(r["track"])
        lines.append(f"{r['track']:<20}{r['laps_completed']:>5d}/{r['episodes']:<4d}{r['mean_completion_pct']:>14.1f}"
                     f"{format_optional(r['best_lap_s'], '>12.2f')}{r['reference_lap_s']:>13.2f}"
                     f"{format_optional(r.get('best_vs_centerline'), '>10.3f')}{format_optional(r.get('best_vs_optimal'), '>11.3f')}"
                     + (f"{u['laps_completed']:>9d}/{u['episodes']:<4d}" if u else ""))
    if "lap_rate" in out:
        lines.append(f"unseen tracks: {_verdict(out['lap_rate'], goal)}")
    if "unseen_lap_rate" in out:
        lines.append(f"unseen tracks under unseen looks (colours, brightness, contrast, gamma outside training's ranges): "
                     f"{_verdict(out['unseen_lap_rate'], goal)}")
    return "\n".join(lines)


def run_race(race: str, config: Path, results_dir: Path, *, minutes: float, episodes: int = 5,
             seed: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train a race config for `minutes`, roll it out deterministically with its objects (and object avoidance without)."""
    trained = _config_race_type(config)
    if trained != race:  # before the minutes of training
        from control.errors import UserError

        raise UserError(f"--race {race}: the config {display_path(config)} trains race type {trained!r}; "
                        f"use a config with env_config.race.type: {race}")
    print(f"race {race}: training {config.name} for {minutes:g} min", flush=True)
    run = train_config(config, results_dir, f"race_{race}", progress_pct=None, cap_s=minutes * 60.0, overrides=overrides, seed=seed)
    if run.checkpoint is None:
        raise RuntimeError(f"the {race} run saved no checkpoint")
    last = run.rows[-1]
    with_objects = roll_out(run.checkpoint, episodes, laps=1, seed=0)
    out: dict[str, Any] = {"machine": machine_description(), "config": display_path(config), "race": race, "minutes": minutes,
                           "episodes": episodes, "training_min": float(last["time_total_s"]) / 60.0,
                           "iterations": int(last["training_iteration"]), "env_steps": int(last["num_env_steps_sampled_lifetime"]),
                           "with_objects": with_objects.as_dict()}
    if race == "object_avoidance":  # the same policy and seeds without the boxes: what the boxes cost of its lap
        out["time_trial"] = roll_out(run.checkpoint, episodes, laps=1, seed=0, race_type="time_trial").as_dict()
    print(format_race(out), flush=True)
    return out


def race_targets(out: dict[str, Any]) -> list[tuple[str, bool]]:
    """Issue 12's target lines of a race result: (line, met); no lap to compare is not met."""
    objects = out["with_objects"]
    if out["race"] == "object_avoidance":
        rate = objects["crash_free_lap_rate"]
        lines = [
            (f"crash-free laps: {objects['crash_free_laps']}/{objects['episodes']} = {100 * rate:.0f} % "
             f"(target >= {100 * CRASH_FREE_GOAL_RATE:.0f} %)", rate >= CRASH_FREE_GOAL_RATE)]
        best, alone = objects["best_lap_s"], out["time_trial"]["best_lap_s"]
        if best is None or alone is None:
            lines.append((f"best lap with the boxes {format_optional(best, '.2f')} s vs the time-trial lap {format_optional(alone, '.2f')} s "
                          f"(target <= {OBJECTS_LAP_GOAL_RATIO:.2f}x): no lap to compare", False))
        else:
            ratio = best / alone
            lines.append((f"best lap with the boxes {best:.2f} s vs the same policy's time-trial lap {alone:.2f} s = {ratio:.3f}x "
                          f"(target <= {OBJECTS_LAP_GOAL_RATIO:.2f}x)", ratio <= OBJECTS_LAP_GOAL_RATIO))
        return lines
    rate, overtaking = objects["crash_free_lap_rate"], objects["overtaking_lap_rate"] or 0.0
    return [(f"laps with no crash: {objects['crash_free_laps']}/{objects['episodes']} = {100 * rate:.0f} % "
             f"(target >= {100 * BOTS_GOAL_RATE:.0f} %)", rate >= BOTS_GOAL_RATE),
            (f"laps with no crash and every bot overtaken: {objects['overtaking_laps'] or 0}/{objects['episodes']} = "
             f"{100 * overtaking:.0f} % (target >= {100 * BOTS_GOAL_RATE:.0f} %)", overtaking >= BOTS_GOAL_RATE)]


def format_race(out: dict[str, Any]) -> str:
    """The race benchmark's rollouts (with objects; object avoidance also without) and its target lines, met / NOT met."""
    header = f"{'rollout':<26}{'episodes':>9}{'laps':>6}{'crash-free':>11}{'every bot':>10}{'best lap s':>12}{'completion %':>14}"
    lines = [f"machine: {out['machine']}",
             f"config:  {out['config']}  race {out['race']}: trained {out['training_min']:.1f} min, {out['iterations']} iterations, "
             f"{out['env_steps']} env steps; {out['episodes']} deterministic episodes of one lap", header, "-" * len(header)]
    rollouts = [("with the objects", out["with_objects"])] + ([("time trial (same policy)", out["time_trial"])] if "time_trial" in out else [])
    for label, r in rollouts:
        every_bot = "-" if r.get("overtaking_laps") is None else str(r["overtaking_laps"])
        lines.append(f"{label:<26}{r['episodes']:>9d}{r['laps_completed']:>6d}{r['crash_free_laps']:>11d}{every_bot:>10}"
                     f"{format_optional(r['best_lap_s'], '>12.2f')}{r['mean_completion_pct']:>14.1f}")
    lines += [f"{line}: {'met' if met else 'NOT met'}" for line, met in race_targets(out)]
    return "\n".join(lines)


def run_lap_quality_benchmark(*, config: str | None = None, quality: bool = False, all_tracks: bool = False,
                              generalisation: bool = False, minutes: float = 15.0, episodes: int = 5,
                              bench_dir: str | None = None, seed: int | None = None, camera: bool = False,
                              appearance: bool = False, race: str | None = None,
                              reward: str | None = None) -> dict[str, Any]:
    """The `train --quality`, `train --generalisation [--camera] [--appearance]` and/or `train --race R` benchmarks, in a benchmark folder."""
    with benchmark_dir(bench_dir) as folder:
        results: dict[str, Any] = {}
        if race is not None:
            results["race"] = run_race(race, config_path(config, RACE_CONFIGS[race]), folder, minutes=minutes, episodes=episodes,
                                       seed=seed)
        if quality:
            results["quality"] = run_quality(config_path(config, VLIDAR_CONFIG), folder, minutes=minutes,
                                             all_tracks=all_tracks, episodes=episodes, seed=seed,
                                             reward=reward)
        if generalisation:
            default = CAMERA_PROCEDURAL_CONFIG if camera else PROCEDURAL_CONFIG
            results["generalisation"] = run_generalisation(config_path(config, default), folder, minutes=minutes,
                                                           episodes=episodes, seed=seed, appearance=appearance)
        return results
