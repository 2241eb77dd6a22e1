"""Episode logic for N cars as arrays: progress, laps, lap times and the termination cascade.

Shared by every backend (the built-in batch and CARLA's batch of one). Statuses are indices
into EPISODE_STATUSES so a step of N cars needs no per-car Python.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numba
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
        self._out = _new_step(n)  # the kernel's output buffers
        self._no_reset = np.zeros(n, dtype=bool)

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
             track_heading_rad: np.ndarray, wheels_on: np.ndarray, time_s: np.ndarray, crashed: np.ndarray,
             resetting: np.ndarray | None = None) -> EpisodeStep:
        """Advance every car's episode by one step; wheels_on is (N, 4) bool.

        Cars where `resetting` is True start a new episode at s_m instead (status "prepare", not done):
        the vector env's autoreset in the same pass.
        """
        reset_mask = self.reset_mask(resetting)
        laps_done = step_episodes(s_m, length_m, x_m, y_m, yaw_rad, track_heading_rad, wheels_on, time_s, crashed, reset_mask,
                                  *self.kernel_state(), *self.kernel_settings(), *self.kernel_outputs())
        return self.finish_step(laps_done, resetting)

    def reset_mask(self, resetting: np.ndarray | None) -> np.ndarray:
        """The kernel's (N,) resetting mask: all False when no car resets."""
        return self._no_reset if resetting is None else resetting

    def kernel_state(self) -> tuple:
        """The arrays the episode kernel updates in place (kept: the kernel writes into them)."""
        return (self.steps, self.s_prev_m, self.travelled_m, self.laps_completed, self.lap_start_time_s, self.wrong_way_steps,
                self.progress, self._recent, self._recent_count, self._recent_head)

    def kernel_settings(self) -> tuple:
        """The termination settings as the episode kernel takes them (converted once)."""
        settings = self.__dict__.get("_kernel_settings")
        if settings is None:
            term = self.term
            settings = self._kernel_settings = (self.max_episode_steps, int(term["laps"]), bool(term["off_track"]),
                                                bool(term["reversed"]), int(term["reversed_steps"]),
                                                float(term["immobilized_distance_m"]))
        return settings

    def kernel_outputs(self) -> tuple:
        """The episode kernel's output buffers: lap_complete, lap_time_s, all_wheels_on_track, off_track, status, terminated, truncated."""
        out = self._out
        return (out.lap_complete, out.lap_time_s, out.all_wheels_on_track, out.off_track, out.status, out.terminated, out.truncated)

    def finish_step(self, laps_done: int, resetting: np.ndarray | None) -> EpisodeStep:
        """Lap-time lists after a kernel step, and the step's results as fresh arrays (infos hold them)."""
        out = self._out
        if laps_done:
            for i in np.flatnonzero(out.lap_complete).tolist():
                self.lap_times_s[i].append(float(out.lap_time_s[i]))
        if resetting is not None:
            for i in np.flatnonzero(resetting).tolist():
                self.lap_times_s[i] = []
        # The kernel's buffers stay here; progress, wheels and status are copied by the params and the status names.
        return EpisodeStep(self.progress, out.lap_complete.copy(), out.lap_time_s.copy(), out.all_wheels_on_track,
                           out.off_track, out.status, out.terminated.copy(), out.truncated.copy())


def _new_step(n: int) -> EpisodeStep:
    """Output buffers of the episode kernel for n cars."""
    return EpisodeStep(np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool),
                       np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))


_IN_PROGRESS, _LAP_COMPLETE, _OFF_TRACK, _CRASHED = STATUS["in_progress"], STATUS["lap_complete"], STATUS["off_track"], STATUS["crashed"]
_IMMOBILIZED, _REVERSED, _TIME_UP, _PREPARE = STATUS["immobilized"], STATUS["reversed"], STATUS["time_up"], STATUS["prepare"]


@numba.njit(cache=True)
def step_episodes(s_m, length_m, x_m, y_m, yaw_rad, track_heading, wheels_on, time_s, crashed, resetting, steps, s_prev,
                  travelled, laps, lap_start, wrong_way, progress, recent, recent_count, recent_head, max_steps, laps_to_finish,
                  end_off_track, end_reversed, reversed_steps, immobilized_m, out_lap_complete, out_lap_time, out_all_on,
                  out_off_track, out_status, out_terminated, out_truncated):  # pragma: no cover - compiled
    """One step of every car's episode in place (the compiled EpisodeTracker.step): progress, laps, the termination cascade.

    Returns how many cars completed a lap.
    """
    window = recent.shape[1]
    laps_done = 0
    for i in range(s_m.shape[0]):
        any_on, all_on = False, True
        for w in range(4):
            any_on = any_on or wheels_on[i, w]
            all_on = all_on and wheels_on[i, w]
        out_all_on[i] = all_on
        if resetting[i]:  # a new episode starts here (EpisodeTracker.reset)
            steps[i], s_prev[i], travelled[i], laps[i], lap_start[i], progress[i] = 0, s_m[i], 0.0, 0, 0.0, 0.0
            wrong_way[i], recent_count[i], recent_head[i] = 0, 1, 0
            recent[i, 0, 0], recent[i, 0, 1] = x_m[i], y_m[i]
            out_lap_complete[i], out_lap_time[i], out_off_track[i] = False, np.nan, False
            out_status[i], out_terminated[i], out_truncated[i] = _PREPARE, False, False
            continue
        steps[i] += 1
        length = length_m[i]
        # Progress: signed distance along the driving direction, unwrapped across the start line.
        ds = (s_m[i] - s_prev[i] + length / 2) % length - length / 2
        s_prev[i] = s_m[i]
        travelled[i] += ds
        lap_progress_m = travelled[i] - laps[i] * length
        lap_complete = lap_progress_m >= length
        out_lap_complete[i] = lap_complete
        out_lap_time[i] = time_s[i] - lap_start[i] if lap_complete else np.nan
        if lap_complete:
            laps_done += 1
            laps[i] += 1
            lap_start[i] = time_s[i]
            progress[i] = 100.0
        else:
            progress[i] = min(max(100.0 * lap_progress_m / length, 0.0), 100.0)
        wrong = math.cos(yaw_rad[i] - track_heading[i]) < 0 and ds < 0
        wrong_way[i] = wrong_way[i] + 1 if wrong else 0
        head = (recent_head[i] + 1) % window
        recent_head[i] = head
        recent[i, head, 0], recent[i, head, 1] = x_m[i], y_m[i]
        count = min(recent_count[i] + 1, window)
        recent_count[i] = count
        oldest = (head - count + 1) % window
        moved_m = math.hypot(recent[i, oldest, 0] - recent[i, head, 0], recent[i, oldest, 1] - recent[i, head, 1])
        off_track = not any_on
        out_off_track[i] = off_track
        status = _IN_PROGRESS
        if lap_complete and laps[i] >= laps_to_finish:
            status = _LAP_COMPLETE
        elif crashed[i]:
            status = _CRASHED
        elif off_track and end_off_track:
            status = _OFF_TRACK
        elif end_reversed and wrong_way[i] >= reversed_steps:
            status = _REVERSED
        elif count == window and moved_m < immobilized_m:
            status = _IMMOBILIZED
        terminated = status != _IN_PROGRESS
        truncated = not terminated and steps[i] >= max_steps
        out_status[i] = _TIME_UP if truncated else status
        out_terminated[i], out_truncated[i] = terminated, truncated
    return laps_done
