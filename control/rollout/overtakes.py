"""Overtakes in a head-to-bot rollout: bots the car passed, and times a bot passed the car, by lap distance."""
from __future__ import annotations

import numpy as np


class OvertakeCounter:
    """Counts passes between the car and each bot from their distances along the lap, step by step.

    A bot's gap is its lap distance minus the car's, wrapped into [-L/2, L/2): ahead > 0, behind <= 0.
    The car passes a bot when the gap goes from ahead to behind by a small step (not by the wrap at
    half a lap, which is no pass); the reverse is the bot passing the car (a recovery put back behind a
    bot counts as that too: the place is lost).
    """

    def __init__(self) -> None:
        self._gap_m: np.ndarray | None = None
        self.passed = np.zeros(0, dtype=np.int64)  # per bot: times the car passed it
        self.passed_by = np.zeros(0, dtype=np.int64)  # per bot: times it passed the car

    def update(self, objects_distance_m: list[float] | np.ndarray, car_distance_m: float, track_length_m: float) -> None:
        """Add this step's positions (objects_distance and projection_distance of DeepRacer's params)."""
        bots_m = np.asarray(objects_distance_m, dtype=np.float64)
        half = 0.5 * float(track_length_m)
        gap = np.mod(bots_m - float(car_distance_m) + half, 2 * half) - half
        if self._gap_m is None or self._gap_m.shape != gap.shape:
            self._gap_m = gap
            self.passed, self.passed_by = np.zeros(len(gap), dtype=np.int64), np.zeros(len(gap), dtype=np.int64)
            return
        small_step = np.abs(gap - self._gap_m) < half
        self.passed += (self._gap_m > 0) & (gap <= 0) & small_step
        self.passed_by += (self._gap_m <= 0) & (gap > 0) & small_step
        self._gap_m = gap

    @property
    def net_per_bot(self) -> np.ndarray:
        """Per bot: passes minus being passed (1 = the car ended the episode one place ahead of it)."""
        return self.passed - self.passed_by
