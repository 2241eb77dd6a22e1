"""ViewerStore: the viewer's small bounded memory (car snapshots, track outlines, laps, iteration points).

The same class is the Ray actor the env runners publish to (control/viewer/channel.py) and the
in-process store the page's event stream reads (control/viewer/server.py). Everything is bounded:
a full snapshot queue drops its oldest entry, so publishers never wait and memory never grows
when nobody watches.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

MAX_SNAPSHOTS = 64  # a few seconds of every runner's snapshots at a few per second
MAX_TRACKS = 32  # procedural pools can hold many tracks: keep the newest outlines only
MAX_ITERATIONS = 100_000  # one small dict per training iteration


class ViewerStore:
    """Bounded, thread-safe store of what the page shows; readers ask for what is newer than their cursor."""

    def __init__(self, max_snapshots: int = MAX_SNAPSHOTS) -> None:
        self._lock = threading.Lock()
        self._snapshots: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max(1, int(max_snapshots)))
        self._seq = 0
        self._tracks: dict[str, dict[str, Any]] = {}
        self._laps: dict[str, tuple[int, dict[str, Any]]] = {}  # kind ("evaluation" | "training") -> (seq, lap)
        self._lap_seq = 0
        self._iterations: list[dict[str, Any]] = []
        self.received = 0
        self.dropped = 0
        self.last_read_s: float | None = None

    # ------------------------------------------------------------------ writers
    def publish(self, snapshot: dict[str, Any], tracks: list[dict[str, Any]] | None = None) -> None:
        """Add one runner's car snapshot (and outlines of tracks the runner has not sent before)."""
        with self._lock:
            for outline in tracks or ():
                self._add_track(outline)
            if len(self._snapshots) == self._snapshots.maxlen:
                self.dropped += 1  # nobody read it in time: the oldest goes, the publisher never waits
            self._seq += 1
            self._snapshots.append((self._seq, snapshot))
            self.received += 1

    def publish_lap(self, lap: dict[str, Any], track: dict[str, Any] | None = None) -> None:
        """Replace the latest lap of its kind (evaluation or training) with `lap`."""
        with self._lock:
            if track is not None:
                self._add_track(track)
            self._lap_seq += 1
            self._laps[str(lap.get("kind", "training"))] = (self._lap_seq, lap)

    def add_iteration(self, point: dict[str, Any]) -> None:
        """Append one training iteration's curve point (a restart's repeated iteration replaces it)."""
        with self._lock:
            iteration = point.get("iteration")
            while self._iterations and iteration is not None and self._iterations[-1].get("iteration", -1) >= iteration:
                self._iterations.pop()
            self._iterations.append(point)
            del self._iterations[:-MAX_ITERATIONS]

    def add_track(self, outline: dict[str, Any]) -> None:
        """Remember a track outline (the newest MAX_TRACKS are kept)."""
        with self._lock:
            self._add_track(outline)

    def _add_track(self, outline: dict[str, Any]) -> None:
        self._tracks.pop(outline["name"], None)
        self._tracks[outline["name"]] = outline
        while len(self._tracks) > MAX_TRACKS:
            self._tracks.pop(next(iter(self._tracks)))

    # ------------------------------------------------------------------ readers
    def read(self, after_seq: int = 0, lap_after: int = 0, iterations_after: int = 0,
             known_tracks: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Snapshots newer than after_seq, laps newer than lap_after, iteration points past index iterations_after,
        and outlines of tracks not in known_tracks, with the cursors to pass next time."""
        with self._lock:
            self.last_read_s = time.time()
            known = set(known_tracks)
            return {
                "seq": self._seq,
                "snapshots": [s for seq, s in self._snapshots if seq > after_seq],
                "lap_seq": self._lap_seq,
                "laps": {kind: lap for kind, (seq, lap) in self._laps.items() if seq > lap_after},
                "iterations": list(self._iterations[iterations_after:]),
                "iteration_count": len(self._iterations),
                "tracks": [t for name, t in self._tracks.items() if name not in known],
            }

    def stats(self) -> dict[str, Any]:
        """Counters: snapshots received, dropped (queue full), queued now, and the bound."""
        with self._lock:
            return {"received": self.received, "dropped": self.dropped, "queued": len(self._snapshots),
                    "max_snapshots": self._snapshots.maxlen, "iterations": len(self._iterations),
                    "laps": sorted(self._laps), "last_read_s": self.last_read_s}
