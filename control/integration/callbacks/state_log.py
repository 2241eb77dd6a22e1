"""RLlib callback that writes every env step's reward inputs as CSV (DeepRacer SIM_TRACE columns first).

One file per env runner per training iteration under <run>/state_log/ (evaluation runners write
eval_* files), through StateLogWriter: each row is handed to the OS as it is written (a killed run
keeps every complete row), files rotate by size and the folder stays under a size cap.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

from control.integration.state_log_writer import DEFAULT_MAX_MB, StateLogWriter, cap_bytes

# DeepRacer's SIM_TRACE columns, in order, so DeepRacer log-analysis notebooks read the file.
SIM_TRACE_COLUMNS = ("episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward", "done",
                     "all_wheels_on_track", "progress", "closest_waypoint", "track_len", "tstamp",
                     "episode_status")
EXTRA_COLUMNS = ("iteration", "worker_index", "env_index", "episode_id", "speed", "distance_from_center",
                 "is_left_of_center", "is_offtrack", "is_crashed", "is_reversed", "reward_components")
# Object-avoidance and head-to-bot races. DeepRacer's SIM_TRACE has no per-object columns (its analysis notebooks,
# deepracer-utils and deepracer-log-guru, read none; its only object column, obstacle_crash_counter, is dropped by
# deepracer-utils as obsolete), so these are our own, from DeepRacer's object params: the nearest object ahead and
# behind along the track (closest_objects), their distances along the track from the car, whether the one ahead is
# left of the centerline and on the car's side, and every object's (x, y) as JSON. Empty in a time trial.
OBJECT_COLUMNS = ("object_ahead", "object_ahead_distance_m", "object_ahead_left_of_center", "object_ahead_in_car_lane",
                  "object_behind", "object_behind_distance_m", "objects_location")
COLUMNS = SIM_TRACE_COLUMNS + EXTRA_COLUMNS + OBJECT_COLUMNS
_NO_OBJECTS = [""] * len(OBJECT_COLUMNS)
_ITERATION_ATTR = "_racing_state_log_iteration"


def state_log_path(log_dir: str | Path, iteration: int, worker_index: int, evaluation: bool) -> Path:
    """File of one env runner for one training iteration."""
    prefix = "eval_" if evaluation else ""
    return Path(log_dir) / f"{prefix}iter_{iteration:06d}_runner_{worker_index:03d}.csv"


def state_log_row(info: dict[str, Any], *, episode: int, reward: float, done: bool, iteration: int,
                  worker_index: int, env_index: int, episode_id: str) -> list[Any]:
    """One CSV row (COLUMNS order) from a step's info dict."""
    p = info.get("params", {})
    closest = p.get("closest_waypoints") or [None, None]
    return [
        episode, p.get("steps"), p.get("x"), p.get("y"), p.get("heading"), info.get("steering_deg"),
        info.get("speed_cmd_mps"), info.get("action_index"), reward, done, p.get("all_wheels_on_track"),
        p.get("progress"), closest[-1], p.get("track_length"), info.get("sim_time_s"),
        info.get("episode_status"),
        iteration, worker_index, env_index, episode_id, p.get("speed"), p.get("distance_from_center"),
        p.get("is_left_of_center"), p.get("is_offtrack"), p.get("is_crashed"), p.get("is_reversed"),
        json.dumps(info.get("reward_components", {}), sort_keys=True, default=float),
        *object_columns(p),
    ]


def object_columns(params: dict[str, Any]) -> list[Any]:
    """The OBJECT_COLUMNS values of one car's params (lists from RacingEnv, arrays from the vector env's per-car split)."""
    closest = params.get("closest_objects")
    if closest is None or len(closest) == 0:
        return list(_NO_OBJECTS)
    behind, ahead = (int(k) for k in closest)
    distance_m = np.asarray(params["objects_distance"], dtype=np.float64)
    car_m, length_m = float(params["projection_distance"]), float(params["track_length"])
    left = bool(params["objects_left_of_center"][ahead])
    location = np.round(np.asarray(params["objects_location"], dtype=np.float64), 3).tolist()
    return [ahead, round((distance_m[ahead] - car_m) % length_m, 4), left, left == bool(params["is_left_of_center"]),
            behind, round((car_m - distance_m[behind]) % length_m, 4), json.dumps(location)]


class StateLogCallback(RLlibCallback):
    """Appends one CSV row per env step; `log_dir` and `max_mb` are set by make_state_log_callback."""

    log_dir: str = ""
    max_mb: float = DEFAULT_MAX_MB

    def __init__(self) -> None:
        super().__init__()
        self._writer: StateLogWriter | None = None
        self._file_key: tuple[int, bool] | None = None
        self._episodes_started = 0
        self._episode_numbers: dict[str, int] = {}

    # --- algorithm side: tell every env runner which iteration it samples for ---------------------
    def on_algorithm_init(self, *, algorithm: Any, **kwargs: Any) -> None:
        """Runs after a restore (the restore callback comes first), so the iteration continues."""
        _broadcast_iteration(algorithm, algorithm.iteration + 1)

    def on_train_result(self, *, algorithm: Any, result: dict[str, Any], **kwargs: Any) -> None:
        """The next samples belong to the next iteration."""
        _broadcast_iteration(algorithm, int(result.get("training_iteration", algorithm.iteration)) + 1)

    # --- env runner side ------------------------------------------------------------------------
    def on_episode_start(self, *, episode: Any, **kwargs: Any) -> None:
        """Number episodes per env runner, as DeepRacer's SIM_TRACE does."""
        self._episode_numbers[episode.id_] = self._episodes_started
        self._episodes_started += 1

    def on_episode_step(self, *, episode: Any, env_runner: Any = None, env_index: int = 0,
                        **kwargs: Any) -> None:
        """Write the row of the step just taken."""
        writer = self._writer_for(env_runner)
        info = episode.get_infos(-1)
        number = self._episode_numbers.setdefault(episode.id_, self._episodes_started)
        writer.write_row(state_log_row(
            info, episode=number, reward=float(episode.get_rewards(-1)), done=bool(episode.is_done),
            iteration=self._file_key[0], worker_index=int(getattr(env_runner, "worker_index", 0)),
            env_index=int(env_index), episode_id=str(episode.id_)))

    def on_episode_end(self, *, episode: Any, **kwargs: Any) -> None:
        """An episode boundary: the writer may rotate to its next part here."""
        self._episode_numbers.pop(episode.id_, None)
        if self._writer is not None:
            self._writer.end_of_episode()

    def __del__(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def _writer_for(self, env_runner: Any) -> StateLogWriter:
        """The writer of this env runner, pointed at the file of its current iteration."""
        iteration = int(getattr(env_runner, _ITERATION_ATTR, 0))
        evaluation = bool(getattr(getattr(env_runner, "config", None), "in_evaluation", False))
        key = (iteration, evaluation)
        if self._writer is None:
            self._writer = StateLogWriter(self.log_dir, COLUMNS, cap_bytes(self.max_mb))
        if key != self._file_key:
            path = state_log_path(self.log_dir, iteration, int(getattr(env_runner, "worker_index", 0)), evaluation)
            self._writer.open(path.stem, iteration)
            self._file_key = key
        return self._writer


def _broadcast_iteration(algorithm: Any, iteration: int) -> None:
    """Set the iteration attribute on every (training and evaluation) env runner."""
    def set_iteration(env_runner: Any) -> None:
        setattr(env_runner, _ITERATION_ATTR, iteration)

    for group in (getattr(algorithm, "env_runner_group", None), getattr(algorithm, "eval_env_runner_group", None)):
        if group is not None:
            group.foreach_env_runner(set_iteration, local_env_runner=True)


def make_state_log_callback(log_dir: str | Path, max_mb: float | None = None) -> type[StateLogCallback]:
    """A StateLogCallback class bound to `log_dir` and a folder cap of `max_mb` MB (0 = no cap, None = the default).

    RLlib instantiates callback classes without arguments, hence a class per run.
    """
    max_mb = DEFAULT_MAX_MB if max_mb is None else max_mb
    cap_bytes(max_mb)  # a bad cap fails here, on the driver, not in every env runner
    return type("BoundStateLogCallback", (StateLogCallback,),
                {"log_dir": os.fspath(Path(log_dir).resolve()), "max_mb": float(max_mb)})
