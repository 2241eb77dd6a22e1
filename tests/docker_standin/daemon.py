"""Test helpers around the real Docker daemon: connect (or skip with the reason), the stand-in image,
free port blocks, a listening socket on a chosen port, and a socket proxy whose stop() makes the
daemon "go away" for one client while it keeps serving every other test.
"""
from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control.carla.server import tcp_probe

STANDIN_DIR = Path(__file__).parent
STANDIN_RUN = "pytest-standin"  # racer.carla.run label of every container these tests launch


def real_docker_or_skip() -> tuple[Any, str]:
    """(docker client, stand-in image tag) for the daemon DOCKER_HOST names; pytest.skip with the reason otherwise."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env(timeout=10)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means: no daemon here
        pytest.skip(f"no Docker daemon reachable ({type(exc).__name__}); run tests/docker_standin/start_dockerd.sh")
    built = subprocess.run(["bash", str(STANDIN_DIR / "build_image.sh")], capture_output=True, text=True, timeout=120)
    if built.returncode != 0:
        pytest.skip(f"could not build the stand-in CARLA image: {built.stderr.strip()[-200:]}")
    return client, built.stdout.strip().splitlines()[-1]


def remove_labelled(client: Any, run_name: str = STANDIN_RUN) -> None:
    """Remove every container labelled with `run_name` (what a test launched)."""
    for container in client.containers.list(all=True, filters={"label": [f"racer.carla.run={run_name}"]}):
        container.remove(force=True)


def free_base_port(slots: int = 4, stride: int = 10) -> int:
    """A base port whose first `slots` port blocks (stride apart) nothing answers on."""
    for _ in range(50):
        base = random.randrange(20000, 40000, 100)
        if not any(tcp_probe("127.0.0.1", base + k, 0.05) for k in range(slots * stride)):
            return base
    pytest.skip("no free port range found")


@contextlib.contextmanager
def listening_on(port: int) -> Iterator[socket.socket]:
    """A real TCP listener on 127.0.0.1:port (someone else's server) for the duration of the block."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    try:
        yield listener
    finally:
        listener.close()


def daemon_socket_path() -> str | None:
    """The unix socket of the daemon the SDK's from_env() uses, or None when it is not a unix socket."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host[len("unix://"):] if host.startswith("unix://") else None


class DockerSocketProxy:
    """A unix socket that forwards to the real daemon until stop(): then its clients see the daemon gone.

    Only clients made by `client()` talk through it, so stopping it never disturbs other tests.
    """

    def __init__(self, target_path: str) -> None:
        self.target_path = target_path
        self._dir = tempfile.mkdtemp(prefix="racer-docker-proxy-")
        self.path = os.path.join(self._dir, "docker.sock")
        self._listener = socket.socket(socket.AF_UNIX)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def client(self) -> Any:
        """A docker.DockerClient talking to the daemon through this proxy."""
        import docker

        return docker.DockerClient(base_url=f"unix://{self.path}", timeout=10)

    def _accept_loop(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target_path)
            with self._lock:
                if self._stopped:
                    downstream.close()
                    upstream.close()
                    return
                self._open += [downstream, upstream]
            threading.Thread(target=self._pump, args=(downstream, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, downstream), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self) -> None:
        """The daemon "goes away" for this proxy's clients: open connections drop, new ones are refused."""
        with self._lock:
            self._stopped = True
            conns, self._open = self._open, []
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        with contextlib.suppress(OSError):
            os.rmdir(self._dir)
