"""Episode logic for N cars as arrays: progress, laps, lap times and the termination cascade.

Shared by every backend (the built-in batch and CARLA's batch of one). Statuses are indices
into EPISODE_STATUSES so a step of N cars needs no per-car Python.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

EPISODE_STATUSES = ("in_progress", "lap_complete", "off_track", "crashed", "immobilized", "reversed", "time_up", "sim_error", "prepare")
STATUS = {name: i for i, name in enumerate(EPISODE_STATUSES)}
STATUS_NAMES = np.array(EPISODE_STATUSES, dtype=object)


@dataclass
class EpisodeStep:
    """What one step did to each car's episode (arrays of shape (N,))."""

    progress: np.ndarray  # 0..100, % of the current lap
    lap_complete: np.ndarray  # bool: a lap ended on this step
    lap_time_s: np.ndarray  # the lap's time where lap_complete, else nan
    all_wheels_on_track: np.ndarray
    off_track: np.ndarray  # no wheel on the track
    status: np.ndarray  # int index into EPISODE_STATUSES
    terminated: np.ndarray
    truncated: np.ndarray


class EpisodeTracker:
    """Per-car lap bookkeeping and termination for N cars."""

    def __init__(self, num_cars: int, termination: Mapping[str, Any], max_episode_steps: int) -> None:
        self.term = dict(termination)
        self.max_episode_steps = int(max_episode_steps)
        self.window = int(self.term["immobilized_steps"]) + 1
        n = num_cars
        self.steps = np.zeros(n, dtype=np.int64)
        self.s_prev_m = np.zeros(n)
        self.travelled_m = np.zeros(n)
        self.laps_completed = np.zeros(n, dtype=np.int64)
        self.lap_start_time_s = np.zeros(n)
        self.wrong_way_steps = np.zeros(n, dtype=np.int64)
        self.progress = np.zeros(n)
        self._recent = np.zeros((n, self.window, 2))  # ring buffer of the last positions
        self._recent_count = np.zeros(n, dtype=np.int64)
        self._recent_head = np.zeros(n, dtype=np.int64)  # slot of the newest position
        self.lap_times_s: list[list[float]] = [[] for _ in range(n)]

    def reset(self, idx: np.ndarray, s_m: np.ndarray, x_m: np.ndarray, y_m: np.ndarray) -> None:
        """Start new episodes for cars `idx` at lap position s_m."""
        self.steps[idx] = 0
        self.s_prev_m[idx] = s_m
        self.travelled_m[idx] = 0.0
        self.laps_completed[idx] = 0
        self.lap_start_time_s[idx] = 0.0
        self.progress[idx] = 0.0
        for i in np.atleast_1d(idx).tolist():
            self.lap_times_s[i] = []
        self.restart_immobilized_window(idx, x_m, y_m)

    def restart_immobilized_window(self, idx: np.ndarray, x_m: np.ndarray, y_m: np.ndarray) -> None:
        """Forget cars' recent positions and wrong-way count (a reset or a recovery to the track)."""
        self.wrong_way_steps[idx] = 0
        self._recent_count[idx] = 1
        self._recent_head[idx] = 0
        self._recent[idx, 0, 0] = x_m
        self._recent[idx, 0, 1] = y_m

    def step(self, s_m: np.ndarray, length_m: np.ndarray, x_m: np.ndarray, y_m: np.ndarray, yaw_rad: np.ndarray,
             track_heading_rad: np.ndarray, wheels_on: np.ndarray, time_s: np.ndarray, crashed: np.ndarray) -> EpisodeStep:
        """Advance every car's episode by one step; wheels_on is (N, 4) bool."""
        self.steps += 1
        # Progress: signed distance along the driving direction, unwrapped across the start line.
        ds = (s_m - self.s_prev_m + length_m / 2) % length_m - length_m / 2
        self.s_prev_m = s_m.copy()
        self.travelled_m += ds
        lap_progress_m = self.travelled_m - self.laps_completed * length_m
        all_on = wheels_on.all(axis=1)
        off_track = ~wheels_on.any(axis=1)
        lap_complete = lap_progress_m >= length_m
        lap_time_s = np.where(lap_complete, time_s - self.lap_start_time_s, np.nan)
        if lap_complete.any():
            self.laps_completed += lap_complete
            self.lap_start_time_s = np.where(lap_complete, time_s, self.lap_start_time_s)
            for i in np.flatnonzero(lap_complete).tolist():
                self.lap_times_s[i].append(float(lap_time_s[i]))
        progress = np.where(lap_complete, 100.0, np.clip(100.0 * lap_progress_m / length_m, 0.0, 100.0))
        self.progress = progress

        heading_error = yaw_rad - track_heading_rad
        wrong_way = (np.cos(heading_error) < 0) & (ds < 0)
        self.wrong_way_steps = np.where(wrong_way, self.wrong_way_steps + 1, 0)
        self._recent_head = (self._recent_head + 1) % self.window
        rows = np.arange(len(s_m))
        self._recent[rows, self._recent_head, 0] = x_m
        self._recent[rows, self._recent_head, 1] = y_m
        self._recent_count = np.minimum(self._recent_count + 1, self.window)
        oldest = (self._recent_head - self._recent_count + 1) % self.window
        moved_m = np.hypot(*(self._recent[rows, oldest] - self._recent[rows, self._recent_head]).T)

        term = self.term
        status = np.full(len(s_m), STATUS["in_progress"])
        conditions = [
            (lap_complete & (self.laps_completed >= int(term["laps"])), "lap_complete"),
            (crashed, "crashed"),
            (off_track & bool(term["off_track"]), "off_track"),
            (bool(term["reversed"]) & (self.wrong_way_steps >= int(term["reversed_steps"])), "reversed"),
            ((self._recent_count == self.window) & (moved_m < float(term["immobilized_distance_m"])), "immobilized"),
        ]
        for condition, name in reversed(conditions):  # the first condition in the list wins
            status = np.where(condition, STATUS[name], status)
        terminated = status != STATUS["in_progress"]
        truncated = ~terminated & (self.steps >= self.max_episode_steps)
        status = np.where(truncated, STATUS["time_up"], status)
        return EpisodeStep(progress, lap_complete, lap_time_s, all_on, off_track, status, terminated, truncated)
