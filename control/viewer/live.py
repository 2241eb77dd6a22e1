"""LiveViewer: the viewer of a training run (`ppo_train.py --viewer`), served by the driver.

bind() takes the port before Ray starts (a busy port fails at once); attach() after ray.init
creates the channel actor, starts the page's server and the feed that copies the channel into the
driver's store while a page is open. stop() ends all of it and never touches the training: the
env runners find the channel gone and stop publishing.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ray.exceptions import GetTimeoutError
from ray.tune import Callback

from control.viewer.curves import iteration_point
from control.viewer.server import DEFAULT_PORT, LOOPBACK_HOST, ClientCount, ViewerServer, is_loopback, make_app
from control.viewer.store import MAX_SNAPSHOTS, ViewerStore

logger = logging.getLogger(__name__)

FEED_PERIOD_S = 0.25  # the driver reads the channel this often while a page is open


def rollout_videos(run_folder: Path | None) -> list[Path]:
    """The run's rollout videos (RUN/rollouts/*/*.mp4), newest first."""
    if run_folder is None:
        return []
    files = [p for p in Path(run_folder).glob("rollouts/*/*.mp4") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)


class IterationPoints(Callback):
    """Tune callback: every training result becomes a curve point in the viewer's store."""

    def __init__(self, store: ViewerStore) -> None:
        self.store: ViewerStore | None = store

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles its callbacks into the experiment state: the live store (threads, locks) stays out of it.
        return {"store": None}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        """Add the result's point (the page's curves grow by one)."""
        if self.store is not None:
            self.store.add_iteration(iteration_point(result))


class ChannelFeed:
    """Copies what the env runners published to the channel actor into the driver's store, while a page watches."""

    def __init__(self, channel: Any, store: ViewerStore, clients: ClientCount) -> None:
        self.channel, self.store, self.clients = channel, store, clients
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-feed", daemon=True)
        self._cursor = {"after_seq": 0, "lap_after": 0}
        self._known: list[str] = []

    def start(self) -> "ChannelFeed":
        """Start polling in a daemon thread."""
        self._thread.start()
        return self

    def pull_once(self, timeout_s: float = 5.0) -> None:
        """Copy the channel's news into the store once."""
        import ray

        data = ray.get(self.channel.read.remote(self._cursor["after_seq"], self._cursor["lap_after"], 0, self._known),
                       timeout=timeout_s)
        self._cursor = {"after_seq": data["seq"], "lap_after": data["lap_seq"]}
        for outline in data["tracks"]:
            self.store.add_track(outline)
            self._known.append(outline["name"])
        for snapshot in data["snapshots"]:
            self.store.publish(snapshot)
        for lap in data["laps"].values():
            self.store.publish_lap(lap)

    def _run(self) -> None:
        while not self._stop.wait(FEED_PERIOD_S):
            if self.clients.value <= 0:
                continue  # nobody watches: the channel's bounded queue drops old snapshots by itself
            try:
                self.pull_once()
            except GetTimeoutError:
                continue  # the actor is still starting (a worker process on a busy machine takes seconds)
            except Exception as exc:  # the channel is gone or Ray is shutting down: the page just stops moving
                logger.info("viewer feed stopped: %s", exc)
                return

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


class LiveViewer:
    """The page of a training run: port bound early, channel and server started once Ray is up."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = LOOPBACK_HOST, run_name: str = "",
                 run_folder: Path | None = None, max_snapshots: int = MAX_SNAPSHOTS) -> None:
        self.server = ViewerServer(host, port)
        self.max_snapshots = int(max_snapshots)
        self.channel_stats: dict[str, Any] | None = None  # the channel's counters when it was stopped
        self.run_name, self.run_folder = run_name, run_folder
        self.store = ViewerStore()
        self.clients = ClientCount()
        self.channel: Any = None
        self.channel_name = ""
        self.feed: ChannelFeed | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        return self.server.url

    def bind(self) -> "LiveViewer":
        """Take the port (UserError when busy); call before Ray starts."""
        self.server.bind()
        return self

    def attach(self, run_name: str, run_folder: Path | None = None) -> "LiveViewer":
        """After ray.init: create the channel actor, serve the page, start the feed; prints the address."""
        from control.viewer.channel import channel_name, start_channel

        self.run_name, self.run_folder = run_name, run_folder or self.run_folder
        self.channel_name = channel_name(run_name)
        self.channel = start_channel(self.channel_name, self.max_snapshots)
        app = make_app(self.store, run_name=run_name, videos=lambda: rollout_videos(self.run_folder),
                       clients=self.clients, stopping=self.server.stopping, local_only=is_loopback(self.server.host))
        self.server.start(app)
        self.feed = ChannelFeed(self.channel, self.store, self.clients).start()
        exposed = "" if is_loopback(self.server.host) else f" (serving {self.server.host}: reachable from other machines)"
        print(f"viewer: {self.url}{exposed}", flush=True)
        return self

    def rllib_callback(self) -> type:
        """The env-runner callback class that publishes to this viewer's channel."""
        from control.integration.callbacks.viewer_publish import make_viewer_callback

        return make_viewer_callback(self.channel_name)

    def tune_callback(self) -> Callback:
        """The Tune callback that feeds the curves."""
        return IterationPoints(self.store)

    def stop(self) -> None:
        """Stop the feed, the server and the channel actor; the training is left alone. Never raises."""
        if self.feed is not None:
            self.feed.stop()
        self.server.stop()
        if self.channel is not None:
            try:
                import ray

                self.channel_stats = ray.get(self.channel.stats.remote(), timeout=2)
            except Exception as exc:  # the actor is gone already, or still starting: no counters
                logger.debug("viewer channel stats: %s", exc)
            try:
                import ray

                ray.kill(self.channel, no_restart=True)
            except Exception as exc:  # Ray already down: the actor went with it
                logger.debug("viewer channel: %s", exc)
            self.channel = None
