"""A real `mlflow server` on 127.0.0.1 (SQLite backend) for tests: import the fixtures into a test module."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Start-up takes 10-20 s on an idle machine and over a minute when the 2 cores are shared.
STARTUP_TIMEOUT_S = 240.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    """One `mlflow server` process group: start, wait for /health, stop (only what it started).

    artifacts_destination: where the server stores uploaded artifacts (default: <folder>/artifacts);
    a path it cannot create makes it refuse every upload, as a store with wrong credentials does.
    """

    def __init__(self, folder: Path, port: int | None = None, artifacts_destination: Path | None = None) -> None:
        self.folder = Path(folder)
        self.port = port or free_port()
        self.artifacts_destination = Path(artifacts_destination) if artifacts_destination else self.folder / "artifacts"
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> MlflowServer:
        """Start the server and return once it answers /health."""
        self.folder.mkdir(parents=True, exist_ok=True)
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        command = [
            str(mlflow_bin), "server",
            "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
            "--artifacts-destination", str(self.artifacts_destination),
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        self._log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        # Own process group: the server starts uvicorn and a job runner, stopped together.
        # MLflow 3's job runner (GenAI jobs: a runner and several huey consumers) is not used by training
        # logging and costs seconds of CPU per start on 2 cores.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.folder, env=env
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}; see {self.folder}/server.log")
            if self.healthy():
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"mlflow server on port {self.port} not healthy after {STARTUP_TIMEOUT_S} s")

    def healthy(self) -> bool:
        """True when /health answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server's process group and wait until the port is closed."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        try:  # children may outlive the leader for a moment
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None
        self._log.close()
        while self.healthy():
            time.sleep(0.1)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """A shared server for the whole test session."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start()
    yield server
    server.stop()


@pytest.fixture
def mlflow_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], MlflowServer]]:
    """Start private servers (for tests that stop them); all are stopped at the end of the test."""
    servers: list[MlflowServer] = []

    def start() -> MlflowServer:
        servers.append(MlflowServer(tmp_path_factory.mktemp("mlflow_server")).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
