"""RunFolderFeed: the viewer of a run folder (`make viewer NAME=...`), training now in another process or finished.

Reads what the run leaves behind, as it grows: every Tune result.json (the curves), the newest
state-log file (the cars, when the run trains with --state_log), the newest evaluation state-log
file (the latest finished evaluation episode) and RUN/rollouts/*/*.mp4 (served as videos).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

from control.viewer.curves import iteration_point
from control.viewer.store import ViewerStore
from control.viewer.track_outline import track_outline

logger = logging.getLogger(__name__)

POLL_S = 1.0
TAIL_BYTES = 256 * 1024  # the end of the newest state-log file holds every car's latest step
STATUS_BY_EPISODE_STATUS = {"off_track": 1, "crashed": 2}


def _train_number(path: Path) -> int:
    match = re.search(r"train_(\d+)", str(path))
    return int(match.group(1)) if match else 0


def _float(text: Any) -> float | None:
    """A CSV cell as a finite float, or None (JSON has no NaN)."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _radians(text: Any) -> float | None:
    degrees = _float(text)
    return None if degrees is None else math.radians(degrees)


class RunFolderFeed:
    """Polls a run folder and keeps a ViewerStore up to date with its curves, cars and latest evaluation episode."""

    def __init__(self, run_folder: Path, store: ViewerStore) -> None:
        self.folder, self.store = Path(run_folder), store
        self._offsets: dict[Path, int] = {}
        self._state_log_seen: tuple[Path, int] | None = None
        self._eval_seen: tuple[Path, int] | None = None
        self.track_name: str | None = None
        self.limits: tuple[float, float] = (15.0, 4.0)  # control_hz, max_speed_mps until the config says
        self._track: Any = None
        # Object-avoidance / head-to-bot runs: (half_length_m, half_width_m, bots) of the race's objects, from the config.
        self._objects: tuple[float, float, bool] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-run-folder", daemon=True)

    def start(self) -> "RunFolderFeed":
        """Load the track, read what is there, then keep polling in a daemon thread."""
        self._load_track()
        self.poll_once()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.poll_once()
            except Exception as exc:  # a file caught half-written or rotated away: try again next time
                logger.debug("run folder poll: %s", exc)

    def poll_once(self) -> None:
        """Read new result lines, the newest cars and the latest evaluation episode."""
        self._read_results()
        self._read_cars()
        self._read_evaluation_episode()

    # ------------------------------------------------------------------ sources
    def _load_track(self) -> None:
        """The run's track outline and car limits from its config.yaml (procedural runs have no single track)."""
        import yaml

        config_file = self.folder / "config.yaml"
        if not config_file.is_file():
            return
        config = yaml.safe_load(config_file.read_text()) or {}
        env_config = config.get("env_config") or {}
        spec = env_config.get("track", "oval")
        spec = spec[0] if isinstance(spec, list) and spec else spec
        try:
            from control.env.config import validate_env_config
            from control.sim.registry import SIMULATORS
            from control.track.track import Track

            if isinstance(spec, str) and spec != "procedural":
                track = Track.load(spec)
                self.track_name, self._track = track.name, track
                self.store.add_track(track_outline(track))
            validated = validate_env_config(dict(env_config))
            limits = SIMULATORS[validated["simulator"]].limits(validated)
            self.limits = (float(limits.control_hz), float(limits.max_speed_mps))
            race = validated["race"]
            if race["type"] == "object_avoidance":
                self._objects = (0.5 * race["box_length_m"], 0.5 * race["box_width_m"], False)
            elif race["type"] == "head_to_bot":
                self._objects = (0.5 * race["bot_length_m"], 0.5 * race["bot_width_m"], True)
        except Exception as exc:  # the page still shows the curves
            logger.info("viewer: no track for %s (%s)", self.folder.name, exc)

    def _read_results(self) -> None:
        files = sorted(self.folder.glob("train_*/*/result.json"), key=_train_number)
        for path in files:
            offset = self._offsets.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]  # a line Tune is still writing waits for the next poll
            self._offsets[path] = offset + len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                if line.strip():
                    self.store.add_iteration(iteration_point(json.loads(line)))

    def _newest(self, pattern: str) -> Path | None:
        files = [p for p in (self.folder / "state_log").glob(pattern) if p.is_file()]
        return max(files, key=lambda p: p.stat().st_mtime) if files else None

    def _rows(self, path: Path, tail_bytes: int | None) -> list[dict[str, str]]:
        """Rows of a state-log CSV (only its last tail_bytes when given), header from its first line."""
        with open(path, "rb") as fh:
            header = fh.readline().decode()
            size = path.stat().st_size
            if tail_bytes is not None and size > tail_bytes:
                fh.seek(size - tail_bytes)
                fh.readline()  # skip the partial line
            body = fh.read().decode("utf-8", "replace")
        body = body[:body.rfind("\n") + 1]
        return list(csv.DictReader(io.StringIO(header + body)))

    def _read_cars(self) -> None:
        path = self._newest("iter_*.csv")
        if path is None or self.track_name is None:
            return
        seen = (path, path.stat().st_size)
        if seen == self._state_log_seen:
            return
        self._state_log_seen = seen
        latest: dict[tuple[str, str], dict[str, str]] = {}
        for row in self._rows(path, TAIL_BYTES):
            latest[(row.get("worker_index", "0"), row.get("env_index", "0"))] = row
        if not latest:
            return
        rows = list(latest.values())
        snapshot = {
            "runner": 0, "evaluation": False, "wall_s": time.time(), "control_hz": self.limits[0],
            "max_speed_mps": self.limits[1], "id": [f"{w}.0.{e}" for w, e in latest], "track": [self.track_name] * len(rows),
            "x": [_float(r["X"]) for r in rows], "y": [_float(r["Y"]) for r in rows],
            "yaw": [_radians(r["yaw"]) for r in rows], "speed": [_float(r.get("speed")) for r in rows],
            "episode": [int(_float(r["episode"]) or 0) for r in rows],
            "status": [STATUS_BY_EPISODE_STATUS.get(r.get("episode_status", ""), 0) for r in rows]}
        objects = self._objects_of(rows[0])
        if objects is not None:
            snapshot["objects"] = {**objects, "car": snapshot["id"][0]}
        self.store.publish(snapshot)

    def _objects_of(self, row: dict[str, str]) -> dict[str, Any] | None:
        """The race objects of a state-log row (its objects_location) as the page draws them, each along the track's heading."""
        cell = row.get("objects_location") or ""
        if self._objects is None or self._track is None or not cell:
            return None
        import numpy as np

        xy = np.asarray(json.loads(cell), dtype=np.float64).reshape(-1, 2)
        heading = self._track.project(xy).heading_rad  # the log keeps no yaw: objects face along the track, as placed
        half_length_m, half_width_m, bots = self._objects
        rects = np.c_[xy, heading, np.full(len(xy), half_length_m), np.full(len(xy), half_width_m)]
        return {"bots": bots, "rects": np.round(rects, 3).tolist()}

    def _read_evaluation_episode(self) -> None:
        path = self._newest("eval_iter_*.csv")
        if path is None or self.track_name is None:
            return
        seen = (path, path.stat().st_size)
        if seen == self._eval_seen:
            return
        self._eval_seen = seen
        episodes: dict[tuple[str, str, str], list[dict[str, str]]] = {}
        for row in self._rows(path, None):
            episodes.setdefault((row.get("worker_index", ""), row.get("env_index", ""), row["episode"]), []).append(row)
        finished = [(key, rows) for key, rows in episodes.items() if rows[-1].get("done") == "True"]
        if not finished:
            return
        (runner, car, _), rows = finished[-1]
        last = rows[-1]
        self.store.publish_lap({
            "kind": "evaluation", "runner": int(_float(runner) or 0), "car": int(_float(car) or 0),
            "wall_s": time.time(), "track": self.track_name, "control_hz": self.limits[0],
            "max_speed_mps": self.limits[1], "status": last.get("episode_status"),
            "progress_pct": _float(last.get("progress")), "lap_time_s": None, "steps": len(rows),
            "x": [_float(r["X"]) for r in rows], "y": [_float(r["Y"]) for r in rows],
            "yaw": [_radians(r["yaw"]) for r in rows], "speed": [_float(r.get("speed")) for r in rows]})
