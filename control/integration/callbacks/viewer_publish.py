"""RLlib callback on the env runners: a few snapshots per second of their cars, and the latest lap, to the viewer.

Reads the env's public race state (RacingVectorEnv.race / RacingEnv.race: a RaceBatch's `states`,
`params`, `tracks`, `episodes`) and sends it to the viewer's named Ray actor
(control/viewer/channel.py). Cost on the sampling path: one clock read per env step between
snapshots; a snapshot is a few numpy reads and one fire-and-forget actor call. While the previous
call is still in flight the snapshot is dropped, never waited for; a channel that is gone (the
viewer stopped) silences this runner and training goes on.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from ray.rllib.callbacks.callbacks import RLlibCallback

logger = logging.getLogger(__name__)

DEFAULT_PUBLISH_HZ = 4.0  # snapshots per second per env runner: enough for motion, negligible cost
DEFAULT_MAX_CARS = 16  # cars per env runner in a snapshot (a fixed sample when there are more)
MAX_LAP_STEPS = 6000  # rows of every car's recent steps kept for lap replays (minutes of driving at 15 Hz)
TRAINING_LAP_EVERY_S = 5.0  # training episodes end all the time: send one of them this often at most
RETRY_LOOKUP_S = 10.0  # how often a runner whose channel was gone looks for it again
STATUS_OK, STATUS_OFFTRACK, STATUS_CRASHED = 0, 1, 2


def race_batches(env: Any) -> list[Any]:
    """The RaceBatch objects behind an env runner's env (native vector env, or gymnasium's SyncVectorEnv of RacingEnvs)."""
    if env is None:
        return []
    inner = getattr(env, "unwrapped", env)
    race = getattr(inner, "race", None)
    if race is not None:
        return [race]
    out = []
    for sub in getattr(inner, "envs", ()) or ():
        race = getattr(getattr(sub, "unwrapped", sub), "race", None)
        if race is not None:
            out.append(race)
    return out


def sample_cars(races: list[Any], max_cars: int) -> list[tuple[int, np.ndarray]]:
    """(race index, car indices) of an evenly spread sample of at most max_cars cars over the races."""
    flat = [(r, i) for r, race in enumerate(races) for i in range(race.num_cars)]
    if len(flat) > max_cars:
        flat = [flat[k] for k in np.linspace(0, len(flat) - 1, max_cars).round().astype(int).tolist()]
    groups: dict[int, list[int]] = {}
    for r, i in flat:
        groups.setdefault(r, []).append(i)
    return [(r, np.array(cars, dtype=np.intp)) for r, cars in groups.items()]


def car_snapshot(races: list[Any], sample: list[tuple[int, np.ndarray]], runner: int, evaluation: bool) -> dict[str, Any] | None:
    """The sampled cars' positions, headings, speeds, episode numbers and status as JSON-ready lists.

    In an object-avoidance or head-to-bot race, `objects` holds the boxes or bots of the first sampled car's
    env (every car has its own): {car, bots, rects: [[x_m, y_m, yaw_rad, half_length_m, half_width_m], ...]}.
    """
    ids, tracks, xs, ys, yaws, speeds, episodes, status = [], [], [], [], [], [], [], []
    hz = max_speed = None
    objects = None
    for r, idx in sample:
        race = races[r]
        if race.sim is None or not race.params:  # not reset yet
            continue
        st = race.states
        xs.append(st.x_m[idx])
        ys.append(st.y_m[idx])
        yaws.append(st.yaw_rad[idx])
        speeds.append(st.speed_mps[idx])
        episodes.append(race.episodes[idx])
        flags = np.where(race.params["is_crashed"][idx], STATUS_CRASHED,
                         np.where(race.params["is_offtrack"][idx], STATUS_OFFTRACK, STATUS_OK))
        status.append(flags)
        ids.extend(f"{runner}.{r}.{i}" for i in idx.tolist())
        tracks.extend(race.tracks[i].name for i in idx.tolist())
        hz, max_speed = race.limits.control_hz, race.limits.max_speed_mps
        race_objects = getattr(race, "race_objects", None)
        if objects is None and race_objects is not None and race_objects.num_objects:
            car = int(idx[0])
            rects = np.stack(race_objects.rectangles(), axis=-1)[car]
            objects = {"car": f"{runner}.{r}.{car}", "bots": race.race_config.type == "head_to_bot",
                       "rects": np.round(rects, 3).tolist()}
    if not ids:
        return None

    def joined(parts: list[np.ndarray], decimals: int) -> list[float]:
        return np.round(np.concatenate(parts).astype(np.float64), decimals).tolist()

    return {"runner": runner, "evaluation": evaluation, "wall_s": time.time(), "control_hz": hz,
            "max_speed_mps": max_speed, "id": ids, "track": tracks, "x": joined(xs, 3), "y": joined(ys, 3),
            "yaw": joined(yaws, 3), "speed": joined(speeds, 2),
            "episode": np.concatenate(episodes).astype(int).tolist(), "status": np.concatenate(status).astype(int).tolist(),
            **({"objects": objects} if objects is not None else {})}


class LapRecorder:
    """Every car's (x, y, yaw, speed) per env step in a preallocated ring, so any car's finished episode can be replayed.

    A step costs four array copies into the ring (no allocation); an episode longer than the ring keeps its end.
    """

    def __init__(self, max_steps: int = MAX_LAP_STEPS) -> None:
        self.max_steps = int(max_steps)
        self._ring: np.ndarray | None = None  # (max_steps, 4, num_cars), allocated at the first record
        self.next_row = 0  # absolute index of the next row; row r lives at r % max_steps
        self._starts: dict[int, int] = {}  # car -> absolute row of its episode's first step

    def record(self, races: list[Any]) -> None:
        """One row: every car's state now."""
        if self._ring is None:
            self._ring = np.zeros((self.max_steps, 4, sum(r.num_cars for r in races)), dtype=np.float32)
        row = self._ring[self.next_row % self.max_steps]
        first = 0
        for race in races:
            st, cars = race.states, slice(first, first + race.num_cars)
            row[0, cars], row[1, cars], row[2, cars], row[3, cars] = st.x_m, st.y_m, st.yaw_rad, st.speed_mps
            first += race.num_cars
        self.next_row += 1

    def start(self, car: int) -> None:
        """Car `car`'s episode starts at the latest row."""
        self._starts[car] = self.next_row - 1

    def episode(self, car: int) -> np.ndarray:
        """(4, steps) of car `car` since its episode started (as much as the ring still holds)."""
        if self._ring is None:
            return np.zeros((4, 0))
        begin = max(self._starts.get(car, 0), self.next_row - self.max_steps, 0)
        rows = np.arange(begin, self.next_row) % self.max_steps
        return self._ring[rows, :, car].T.astype(np.float64)


class ViewerPublishCallback(RLlibCallback):
    """Publishes car snapshots and the latest lap of car 0 to the viewer channel; class attributes set by make_viewer_callback."""

    channel_name: str = ""
    publish_hz: float = DEFAULT_PUBLISH_HZ
    max_cars: int = DEFAULT_MAX_CARS

    def __init__(self) -> None:
        super().__init__()
        self._channel: Any = None
        self._lookup_after_s = 0.0
        self._pending: Any = None
        self._next_publish_s = 0.0
        self._races: list[Any] | None = None
        self._sample: list[tuple[int, np.ndarray]] = []
        self._sent_tracks: set[str] = set()
        self._laps = LapRecorder()
        self._record_lap: bool | None = None
        self._next_training_lap_s = 0.0

    # ------------------------------------------------------------------ RLlib hooks
    def on_episode_start(self, *, env_runner: Any = None, env: Any = None, env_index: int = 0, **kwargs: Any) -> None:
        """A car's new episode: its lap replay starts at this step."""
        if env_index == 0:
            self._every_step(env, env_runner)
        if self._record_lap:
            self._laps.start(env_index)

    def on_episode_step(self, *, env_runner: Any = None, env: Any = None, env_index: int = 0, **kwargs: Any) -> None:
        """Once per env step (car 0's call): record the lap rows; every 1/publish_hz s, publish a snapshot."""
        if env_index == 0:  # RLlib calls every car in order: car 0's call (start or step) stands for the batch
            self._every_step(env, env_runner)

    def _every_step(self, env: Any, env_runner: Any) -> None:
        if self._races is None:
            self._attach(env, env_runner)
        if self._record_lap:
            self._laps.record(self._races)
        now_s = time.monotonic()
        if now_s < self._next_publish_s:
            return
        self._next_publish_s = now_s + 1.0 / self.publish_hz
        self._publish_snapshot(env_runner)

    def on_episode_end(self, *, episode: Any = None, env_runner: Any = None, env_index: int = 0, **kwargs: Any) -> None:
        """A finished episode becomes the viewer's latest lap (evaluation runners; the first training runner now and then)."""
        if not self._record_lap:
            return
        evaluation = self._evaluation(env_runner)
        now_s = time.monotonic()
        if not evaluation and now_s < self._next_training_lap_s:
            return
        steps = self._laps.episode(env_index)
        if steps.shape[1] < 2:
            return
        # A lap is rare and worth more than a snapshot: it goes even while a snapshot call is in flight.
        channel = self._channel if self._pending is not None else self._ready_channel()
        if channel is None:
            return
        self._next_training_lap_s = now_s + TRAINING_LAP_EVERY_S
        race, car = self._car(env_index)
        track = race.tracks[car]
        info = episode.get_infos(-1) if episode is not None else {}
        laps_s = [float(i["lap_time_s"]) for i in (episode.get_infos() if episode is not None else []) if "lap_time_s" in i]
        lap = {"kind": "evaluation" if evaluation else "training",
               "runner": self._runner(env_runner), "car": env_index, "wall_s": time.time(), "track": track.name,
               "control_hz": race.limits.control_hz, "max_speed_mps": race.limits.max_speed_mps,
               "status": info.get("episode_status"), "progress_pct": (info.get("params") or {}).get("progress"),
               "lap_time_s": laps_s[-1] if laps_s else None, "steps": int(steps.shape[1]),
               **{key: np.round(steps[k], 3).tolist() for k, key in enumerate(("x", "y", "yaw", "speed"))}}
        outline = self._new_track_outlines([track])[0] if track.name not in self._sent_tracks else None
        self._send(channel.publish_lap.remote(lap, outline))

    # ------------------------------------------------------------------ internals
    def _attach(self, env: Any, env_runner: Any) -> None:
        """Find the race state behind the env once; decide whether this runner records laps."""
        self._races = race_batches(env)
        self._sample = sample_cars(self._races, self.max_cars)
        # Evaluation runners always; training runners only without evaluation, and then only the first
        # (index 0 local, or 1): one lap to show, and no recording cost on the others.
        config = getattr(env_runner, "config", None)
        evaluation_on = bool(getattr(config, "evaluation_interval", 0) or 0)
        self._record_lap = bool(self._races) and (
            self._evaluation(env_runner) or (not evaluation_on and self._runner(env_runner) <= 1))

    def _car(self, env_index: int) -> tuple[Any, int]:
        """(race, car index in it) of the env runner's sub-env env_index."""
        for race in self._races:
            if env_index < race.num_cars:
                return race, env_index
            env_index -= race.num_cars
        raise IndexError(f"env index beyond the env's {sum(r.num_cars for r in self._races)} cars")

    def _publish_snapshot(self, env_runner: Any) -> None:
        if not self._races:
            return
        channel = self._ready_channel()
        if channel is None:
            return
        snapshot = car_snapshot(self._races, self._sample, self._runner(env_runner), self._evaluation(env_runner))
        if snapshot is None:
            return
        new = {}
        for r, idx in self._sample:
            for i in idx.tolist():
                track = self._races[r].tracks[i]
                if track is not None and track.name not in self._sent_tracks:
                    new[track.name] = track
        self._send(channel.publish.remote(snapshot, self._new_track_outlines(list(new.values()))))

    def _new_track_outlines(self, tracks: list[Any]) -> list[dict[str, Any]]:
        from control.viewer.track_outline import track_outline

        self._sent_tracks.update(t.name for t in tracks)
        return [track_outline(t) for t in tracks]

    def _ready_channel(self) -> Any:
        """The channel, when it exists and the previous call has been delivered; else None (this snapshot is dropped)."""
        import ray

        if self._pending is not None:
            ready, _ = ray.wait([self._pending], timeout=0)
            if not ready:
                return None  # the channel is behind: drop rather than queue up calls
            try:
                ray.get(ready[0])
            except Exception as exc:  # the viewer stopped (actor gone): training goes on without it
                logger.info("viewer channel gone (%s): this env runner stops publishing", type(exc).__name__)
                self._channel = None
                self._sent_tracks.clear()
                self._lookup_after_s = time.monotonic() + RETRY_LOOKUP_S
            self._pending = None
        if self._channel is None and self.channel_name and time.monotonic() >= self._lookup_after_s:
            from control.viewer.channel import find_channel

            self._channel = find_channel(self.channel_name)
            if self._channel is None:
                self._lookup_after_s = time.monotonic() + RETRY_LOOKUP_S
        return self._channel

    def _send(self, ref: Any) -> None:
        self._pending = ref

    @staticmethod
    def _runner(env_runner: Any) -> int:
        return int(getattr(env_runner, "worker_index", 0) or 0)

    @staticmethod
    def _evaluation(env_runner: Any) -> bool:
        return bool(getattr(getattr(env_runner, "config", None), "in_evaluation", False))


def make_viewer_callback(channel: str, publish_hz: float = DEFAULT_PUBLISH_HZ,
                         max_cars: int = DEFAULT_MAX_CARS) -> type[ViewerPublishCallback]:
    """A ViewerPublishCallback class bound to the channel actor's name (RLlib builds callbacks without arguments)."""
    return type("BoundViewerPublishCallback", (ViewerPublishCallback,),
                {"channel_name": str(channel), "publish_hz": float(publish_hz), "max_cars": int(max_cars)})
