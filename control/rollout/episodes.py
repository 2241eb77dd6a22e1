"""The rollout loop: a policy drives the env for N episodes; every step is recorded for metrics and plots."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from control.rollout.overtakes import OvertakeCounter

# Per-step columns of an EpisodeRecord (after each env step).
STEP_COLUMNS = ("x_m", "y_m", "yaw_deg", "speed_mps", "steering_deg", "speed_cmd_mps", "steering_cmd_deg",
                "action_index", "reward", "progress", "time_s", "all_wheels_on_track")
# Episode ends that DeepRacer's continuous evaluation recovers from (put back on track, time penalty).
RECOVERABLE_STATUSES = ("off_track", "crashed", "reversed")
# DeepRacer's evaluation defaults (deepracer-for-cloud defaults/template-run.env): DR_EVAL_COLLISION_PENALTY=5.0
# seconds per crash, and after a crash the car is put back DR_EVAL_RESET_BEHIND_DIST=1.0 m behind it.
CRASH_PENALTY_S = 5.0
CRASH_RESET_BEHIND_M = 1.0


@dataclass
class EpisodeRecord:
    """One rolled-out episode: per-step arrays (STEP_COLUMNS) and its events."""

    index: int
    track_name: str
    control_hz: float
    steps: dict[str, np.ndarray]
    status: str  # the final episode_status
    lap_times_s: list[float] = field(default_factory=list)  # completed laps, reset penalties included
    off_track_count: int = 0
    crash_count: int = 0
    reversed_count: int = 0
    reset_count: int = 0
    reset_penalty_s: float = 0.0  # seconds per off-track or reversed reset (continuous mode)
    crash_penalty_s: float = 0.0  # seconds per crash reset (continuous mode)
    penalty_s: float = 0.0  # every penalty of the episode, seconds
    race_type: str = "time_trial"
    bots_passed: list[int] = field(default_factory=list)  # head-to-bot, per bot: times the car passed it
    passed_by_bots: list[int] = field(default_factory=list)  # per bot: times it passed the car
    objects_xy_m: list[tuple[float, float]] = field(default_factory=list)  # boxes or bots at the episode's start (plots)
    start_xy_m: tuple[float, float] = (0.0, 0.0)
    track: Any = None  # the Track driven (for plots)

    @property
    def num_steps(self) -> int:
        return int(len(self.steps["reward"]))


class StepRecorder:
    """Collects per-step values in lists, turned into arrays once at the end."""

    def __init__(self) -> None:
        self.columns: dict[str, list[float]] = {c: [] for c in STEP_COLUMNS}

    def add(self, info: dict[str, Any], reward: float, time_s: float) -> None:
        p, vehicle = info["params"], info.get("vehicle", {})
        values = {
            "x_m": p["x"], "y_m": p["y"], "yaw_deg": p["heading"],
            "speed_mps": vehicle.get("speed_mps", p["speed"]),
            "steering_deg": vehicle.get("steering_deg", p["steering_angle"]),
            "speed_cmd_mps": info.get("speed_cmd_mps", p["speed"]),
            "steering_cmd_deg": info.get("steering_deg", p["steering_angle"]),
            "action_index": info.get("action_index", -1), "reward": reward, "progress": p["progress"],
            "time_s": time_s, "all_wheels_on_track": float(p["all_wheels_on_track"]),
        }
        for key, value in values.items():
            self.columns[key].append(float(value))

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.columns.items()}


def run_episodes(env: Any, policy: Any, episodes: int, *, seed: int | None = None, continuous: bool = False,
                 reset_penalty_s: float = 2.0, crash_penalty_s: float = CRASH_PENALTY_S,
                 on_frame: Callable[[int, np.ndarray], None] | None = None, progress_bar: bool = True) -> list[EpisodeRecord]:
    """Roll out `episodes` episodes; `on_frame(episode, frame)` gets the reset frame and one frame per step.

    continuous=True is DeepRacer's continuous evaluation: off track, crashed or reversed puts the car back
    on the centerline (env.recover_to_track; after a crash CRASH_RESET_BEHIND_M behind it) and adds
    `reset_penalty_s` (off track, reversed) or `crash_penalty_s` (crashed) to the lap time instead of ending.
    """
    from tqdm import tqdm

    records: list[EpisodeRecord] = []
    bar = tqdm(total=episodes, unit="episode", desc="rollout", disable=not progress_bar, dynamic_ncols=True)
    try:
        for episode in range(episodes):
            penalties = {"crashed": crash_penalty_s, "off_track": reset_penalty_s, "reversed": reset_penalty_s}
            records.append(_run_one(env, policy, episode, seed if episode == 0 else None, continuous,
                                    penalties, on_frame, bar))
            bar.update(1)
    finally:
        bar.close()
    return records


def _race_type(env: Any) -> str:
    """env_config.race.type of the env (time_trial when it has none)."""
    return str((getattr(env, "config", None) or {}).get("race", {}).get("type", "time_trial"))


def _run_one(env: Any, policy: Any, episode: int, seed: int | None, continuous: bool, penalties_s: dict[str, float],
             on_frame: Callable[[int, np.ndarray], None] | None, bar: Any) -> EpisodeRecord:
    obs, _ = env.reset(seed=seed)
    if on_frame is not None:
        on_frame(episode, env.render())
    dt_s = 1.0 / float(env.control_hz)
    recorder = StepRecorder()
    record = EpisodeRecord(index=episode, track_name=env.track.name, control_hz=float(env.control_hz), steps={},
                           status="in_progress", reset_penalty_s=penalties_s["off_track"] if continuous else 0.0,
                           crash_penalty_s=penalties_s["crashed"] if continuous else 0.0, race_type=_race_type(env),
                           start_xy_m=(float(env.vehicle.x_m), float(env.vehicle.y_m)), track=env.track,
                           objects_xy_m=[tuple(xy) for xy in env.params.get("objects_location", [])])
    overtakes = OvertakeCounter() if record.race_type == "head_to_bot" else None
    penalty_this_lap_s = 0.0
    elapsed_s = 0.0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.compute_action(obs))
        elapsed_s += dt_s  # the rollout's own clock: a recovery may restart the backend's clock
        status = info["episode_status"]
        recorder.add(info, float(reward), elapsed_s)
        p = info["params"]
        if overtakes is not None:
            overtakes.update(p["objects_distance"], p["projection_distance"], p["track_length"])
        if "lap_time_s" in info:
            record.lap_times_s.append(float(info["lap_time_s"]) + penalty_this_lap_s)
            penalty_this_lap_s = 0.0
        record.off_track_count += status == "off_track"
        record.crash_count += status == "crashed"
        record.reversed_count += status == "reversed"
        if continuous and terminated and status in RECOVERABLE_STATUSES:
            obs = env.recover_to_track(CRASH_RESET_BEHIND_M) if status == "crashed" else env.recover_to_track()
            record.reset_count += 1
            penalty_s = penalties_s[status]
            penalty_this_lap_s += penalty_s
            record.penalty_s += penalty_s
            elapsed_s += penalty_s
            terminated = False
        if on_frame is not None:
            on_frame(episode, env.render())
        if bar is not None and len(recorder.columns["reward"]) % 15 == 0:
            bar.set_postfix(episode=episode, step=len(recorder.columns["reward"]),
                            progress=f"{info['params']['progress']:.0f}%", refresh=False)
        if terminated or truncated:
            record.status = status
            break
    record.steps = recorder.arrays()
    if overtakes is not None:
        record.bots_passed, record.passed_by_bots = overtakes.passed.tolist(), overtakes.passed_by.tolist()
    return record
