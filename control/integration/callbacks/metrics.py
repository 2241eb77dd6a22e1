"""RLlib callback that reports racing metrics for every finished episode under env_runners/ (and evaluation/).

Keys (smoothed over the last `metrics_num_episodes_for_smoothing` episodes, like RLlib's own
episode_return_mean): lap_progress_mean, lap_progress_max, offtrack_rate, speed_mps_mean,
lap_time_s_mean; per iteration: laps_completed; lifetime: laps_completed_lifetime.
The episode length is RLlib's own env_runners/episode_len_mean.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

# Metric names (the MLflow callback and the stop conditions read these).
LAP_PROGRESS_MEAN = "lap_progress_mean"
LAP_PROGRESS_MAX = "lap_progress_max"
LAPS_COMPLETED = "laps_completed"
LAPS_COMPLETED_LIFETIME = "laps_completed_lifetime"
LAP_TIME_S_MEAN = "lap_time_s_mean"
OFFTRACK_RATE = "offtrack_rate"
SPEED_MPS_MEAN = "speed_mps_mean"


def episode_step_infos(episode: Any, prev_episode_chunks: list[Any] | None) -> list[dict[str, Any]]:
    """The info dict of every env step of a finished episode, across the chunks RLlib cut it into."""
    infos: list[dict[str, Any]] = []
    for chunk in [*(prev_episode_chunks or []), episode]:
        # Index 0 is the reset info (or the previous chunk's last step): not a step of this chunk.
        infos.extend(chunk.get_infos()[1:])
    return infos


def summarize_episode(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """Progress, status, mean speed and lap times of one episode from its step infos (full infos)."""
    if not infos:
        return {}
    last = infos[-1]
    if LEAN_SUMMARY_KEY in last:
        return summarize_lean_episode(last)
    params = last.get("params", {})
    # The measured speed (params["speed"] is the commanded one, as in DeepRacer), as the rollout metrics use.
    speeds = np.array([i.get("vehicle", {}).get("speed_mps", i.get("params", {}).get("speed", np.nan)) for i in infos],
                      dtype=np.float64)
    return {
        "progress": float(params.get("progress", 0.0)),
        "status": last.get("episode_status", "in_progress"),
        "speed_mps_mean": float(np.nanmean(speeds)) if np.isfinite(speeds).any() else math.nan,
        "lap_times_s": [float(i["lap_time_s"]) for i in infos if "lap_time_s" in i],
    }


# Lean infos (env_config.infos: lean) carry the episode's summary on its last step: no walk over its steps.
LEAN_SUMMARY_KEY = "episode_speed_mps_mean"


def summarize_lean_episode(last: dict[str, Any]) -> dict[str, Any]:
    """summarize_episode's fields from the last step's lean info alone."""
    return {
        "progress": float(last.get("params", {}).get("progress", 0.0)),
        "status": last.get("episode_status", "in_progress"),
        "speed_mps_mean": float(last[LEAN_SUMMARY_KEY]),
        "lap_times_s": [float(t) for t in last.get("episode_lap_times_s", [])],
    }


class EpisodeMetricsCallback(RLlibCallback):
    """Logs lap progress, laps, lap time, off-track rate and mean speed at every episode end."""

    def on_episode_end(self, *, episode: Any, prev_episode_chunks: list[Any] | None = None,
                       env_runner: Any = None, metrics_logger: Any = None, **kwargs: Any) -> None:
        """Summarise the finished episode into the env runner's metrics."""
        last = episode.get_infos(-1) if len(episode) else {}
        if LEAN_SUMMARY_KEY in last:  # one info instead of every step's (get_infos() costs ≈ 1 ms per episode)
            summary = summarize_lean_episode(last)
        else:
            summary = summarize_episode(episode_step_infos(episode, prev_episode_chunks))
        if not summary or metrics_logger is None:
            return
        window = _smoothing_window(env_runner)
        metrics_logger.log_value(LAP_PROGRESS_MEAN, summary["progress"], reduce="mean", window=window)
        metrics_logger.log_value(LAP_PROGRESS_MAX, summary["progress"], reduce="max", window=window)
        metrics_logger.log_value(OFFTRACK_RATE, float(summary["status"] == "off_track"), reduce="mean",
                                 window=window)
        if math.isfinite(summary["speed_mps_mean"]):
            metrics_logger.log_value(SPEED_MPS_MEAN, summary["speed_mps_mean"], reduce="mean", window=window)
        laps = len(summary["lap_times_s"])
        metrics_logger.log_value(LAPS_COMPLETED, laps, reduce="sum")
        metrics_logger.log_value(LAPS_COMPLETED_LIFETIME, laps, reduce="lifetime_sum")
        for lap_time_s in summary["lap_times_s"]:
            metrics_logger.log_value(LAP_TIME_S_MEAN, lap_time_s, reduce="mean", window=window)


def _smoothing_window(env_runner: Any) -> int:
    """RLlib's own rule: the smoothing window split over the env runners (merged later)."""
    config = getattr(env_runner, "config", None)
    if config is None:
        return 100
    return max(1, math.ceil(config.metrics_num_episodes_for_smoothing / (config.num_env_runners or 1)))
