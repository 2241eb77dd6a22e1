"""Rollouts of the race types: crash counts and penalties in continuous evaluation, overtakes in head-to-bot."""
from __future__ import annotations

import math

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.rollout.episodes import CRASH_PENALTY_S, run_episodes
from control.rollout.metrics import build_report, format_table
from control.rollout.overtakes import OvertakeCounter


class LaneDriver:
    """Follows a line `offset_m` right of the centerline (negative: left); `dodge_m` instead once the car was put back."""

    def __init__(self, env: RacingEnv, offset_m: float = 0.0, dodge_m: float | None = None, speed_mps: float = 1.5) -> None:
        self.env, self.offset_m, self.dodge_m, self.speed_mps = env, offset_m, dodge_m, speed_mps
        self.calls, self.recovered = 0, False

    def compute_action(self, obs) -> np.ndarray:
        self.calls += 1
        env, v = self.env, self.env.vehicle
        self.recovered = self.recovered or (self.calls > 1 and v.speed_mps == 0.0)  # at rest: just put back
        target_m = self.dodge_m if self.recovered and self.dodge_m is not None else self.offset_m
        proj = env.driving_track.project(np.array([[v.x_m, v.y_m]]))
        heading_error = math.remainder(float(proj.heading_rad[0]) - v.yaw_rad, math.tau)
        right_m = float(proj.distance_from_center_m[0]) * (-1 if proj.is_left_of_center[0] else 1)
        steer_deg = math.degrees(1.5 * heading_error + 4.0 * (right_m - target_m))
        lo, hi = env.action_type.config["speed_mps"]
        return np.array([np.clip(steer_deg / 30.0, -1, 1), 2 * (self.speed_mps - lo) / (hi - lo) - 1], np.float32)


def _box_side_right(env: RacingEnv) -> float:
    """+1 when the env's first object lies right of the centerline, -1 when left."""
    return -1.0 if env.params["objects_left_of_center"][0] else 1.0


def test_continuous_evaluation_puts_a_crashed_car_back_behind_the_box_and_adds_the_crash_penalty():
    config = {"track": "oval", "start": {"mode": "fixed"}, "max_episode_steps": 900,
              "race": {"type": "object_avoidance", "positions": [[0.3, 1]], "box_width_m": 0.4}}
    # On the centerline the car runs into the wide box (its inner edge is 1 cm past the centerline) and ends crashed.
    env = RacingEnv(config)
    ended = run_episodes(env, LaneDriver(env), 1, seed=0, progress_bar=False)[0]
    assert ended.status == "crashed" and ended.crash_count == 1
    # Continuous: put back 1 m behind the box, the driver then passes it in the other lane and laps.
    env = RacingEnv(config)
    env.reset(seed=0)
    driver = LaneDriver(env, dodge_m=-0.22 * _box_side_right(env))
    (record,) = run_episodes(env, driver, 1, seed=0, continuous=True, reset_penalty_s=2.0, progress_bar=False)
    assert record.status == "lap_complete"
    assert record.crash_count == record.reset_count == 1 and record.off_track_count == 0
    assert record.penalty_s == CRASH_PENALTY_S == 5.0
    # The lap time is the driving time plus DeepRacer's 5 s per crash (not the 2 s off-track penalty).
    assert record.lap_times_s[0] == pytest.approx(record.num_steps / 15.0 + 5.0, abs=1e-6)
    # Put back 1 m behind: the lap's progress drops by 1 m of the 28 m lap, so the metre driven again is not counted twice.
    jump = int(np.argmax(np.hypot(np.diff(record.steps["x_m"]), np.diff(record.steps["y_m"])))) + 1
    progress = record.steps["progress"]
    drop_pct = progress[jump - 1] - progress[jump + 1]
    assert drop_pct == pytest.approx(100.0 / env.track.length_m, abs=1.0)

    report = build_report([record, ended], None, {})
    first, second = report["episodes"]
    assert (first["crash_count"], first["penalty_s"], second["penalty_s"]) == (1, 5.0, 0.0)
    aggregate = report["aggregate"]
    assert aggregate["crash_count"] == 2 and aggregate["crash_free_episodes"] == 0 and aggregate["penalty_s"] == 5.0
    assert "overtakes" not in first  # not a head-to-bot race
    table = format_table(report)
    header, _, row = table.splitlines()[:3]
    assert "penalty s" in header and "overtakes" in header
    assert "5.0" in row.split() and "crash-free 0/2" in table


def test_a_head_to_bot_rollout_counts_the_bot_the_car_passes():
    config = {"track": "oval", "start": {"mode": "fixed"}, "max_episode_steps": 900, "termination": {"laps": 2},
              "race": {"type": "head_to_bot", "num_bots": 1, "bot_speed_mps": 0.3, "lane_changes": False}}
    env = RacingEnv(config)
    env.reset(seed=4)
    # Drive the other lane than the bot's (it never changes lanes), 1.2 m/s faster: one pass within two laps.
    driver = LaneDriver(env, offset_m=-0.2 * _box_side_right(env))
    (record,) = run_episodes(env, driver, 1, seed=4, continuous=True, progress_bar=False)
    assert record.status == "lap_complete" and record.crash_count == 0
    assert (record.bots_passed, record.passed_by_bots) == ([1], [0])
    report = build_report([record], None, {})
    (episode,) = report["episodes"]
    assert episode["overtakes"] == 1 and episode["every_bot_overtaken"] is True
    assert report["aggregate"]["overtakes"] == 1 and report["aggregate"]["every_bot_overtaken_rate"] == 1.0
    assert "overtakes 1" in format_table(report)


def test_overtakes_count_passes_both_ways_but_not_the_half_lap_wrap():
    counter = OvertakeCounter()
    # On a 20 m lap: the car passes bot 0; bot 1 comes from behind and passes the car; bot 2 drifts over the
    # half-lap point (10 m ahead becomes 10 m behind), which is no pass.
    steps = [(0.0, [1.0, 19.5, 9.9]), (0.5, [1.1, 19.9, 10.6]), (1.0, [1.2, 0.6, 11.2]), (1.5, [1.3, 1.8, 11.8])]
    for car_m, bots_m in steps:
        counter.update(bots_m, car_m, 20.0)
    assert counter.passed.tolist() == [1, 0, 0]
    assert counter.passed_by.tolist() == [0, 1, 0]
    assert counter.net_per_bot.tolist() == [1, -1, 0]


def test_a_rollout_env_records_every_step_even_when_the_training_ran_with_lean_infos():
    from control.rollout.inference import RunConfig, make_env

    run = RunConfig(env="RacerVLidar-v0", env_config={"track": "oval", "infos": "lean", "max_episode_steps": 5,
                                                        "race": {"type": "head_to_bot", "num_bots": 1}})
    env = make_env(run, {}, render=False)
    (record,) = run_episodes(env, LaneDriver(env), 1, seed=0, progress_bar=False)
    assert record.num_steps == 5 and record.bots_passed == [0]  # every step's params reached the recorder


def test_state_log_analysis_reports_the_crash_rate_per_iteration():
    import pandas as pd

    from control.rollout.analyze import iteration_table

    episodes = pd.DataFrame({"iteration": [1, 1, 1, 1, 2], "total_reward": [1.0] * 5, "progress": [10.0, 100.0, 20.0, 5.0, 100.0],
                             "status": ["crashed", "lap_complete", "crashed", "off_track", "lap_complete"],
                             "lap_time_s": [np.nan, 20.0, np.nan, np.nan, 19.0], "steps": [1] * 5, "mean_speed_mps": [1.0] * 5})
    table = iteration_table(episodes)
    assert table["crash_rate"].tolist() == [0.5, 0.0]


def test_a_negative_crash_penalty_is_a_one_line_error(capsys, tmp_path):
    from control.rollout.cli import main

    assert main(["-n", "run", "--results_dir", str(tmp_path), "--crash_penalty_s", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --crash_penalty_s -1.0: expected seconds >= 0"
