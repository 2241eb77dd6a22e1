"""Graceful Ctrl-C/SIGTERM for a training run: the first asks for a clean stop, the second aborts.

Imports nothing heavy on purpose: the CLI installs it before anything else, so a SIGTERM during
start-up (what `timeout`, systemd, Slurm and Kubernetes send) is a clean stop, never a half-made run.
"""
from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignal:
    """First SIGINT/SIGTERM: finish the iteration, checkpoint, stop. Second: abort at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (main thread only; elsewhere Tune's defaults stay)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)

    def reinstall(self) -> None:
        """Take the signals back after ray.init: Ray's core worker installs a SIGTERM handler that aborts the driver."""
        if threading.current_thread() is not threading.main_thread() or not self._previous:
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        """Give the signals back to whoever had them."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles the stopper with its experiment state; the saved handlers (Tune's own
        # SIGINT handler among them) hold locks that cannot be pickled and mean nothing elsewhere.
        return {"received": self.received, "_previous": {}}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            self.uninstall()
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborting without a checkpoint")
        self.received = signal.Signals(signum).name
        print(f"\n{self.received} received: finishing this iteration, saving a checkpoint, then stopping "
              "(send it again to abort at once)", flush=True)
