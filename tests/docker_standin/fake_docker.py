"""A fake of the Docker SDK client (the subset the CARLA server manager uses), for tests.

Covers the same logic as the real-daemon tests where no daemon can be had. A container's
`-carla-rpc-port=N` argument starts a fake CARLA server (tests/fake_carla.py) on port N when a
fake carla module is given, so the backend's restart path can be exercised end to end.
`go_away(error)` makes the daemon stop answering: every later call raises `error`, as the SDK
raises DockerException / requests' ConnectionError / APIError when the real daemon is gone.
"""
from __future__ import annotations

import builtins
import itertools
from typing import Any

import docker.errors

_ids = itertools.count(1)


def _rpc_port(command: list[str]) -> int | None:
    for arg in command:
        if arg.startswith("-carla-rpc-port="):
            return int(arg.split("=", 1)[1])
    return None


class FakeContainer:
    """A container record: name, labels, status, and the run kwargs it was created with."""

    def __init__(self, client: "FakeDockerClient", kwargs: dict[str, Any]):
        self.client = client
        self.kwargs = kwargs
        self.id = f"fake{next(_ids):08d}"
        self.name = kwargs.get("name") or self.id
        self.labels = dict(kwargs.get("labels") or {})
        self.status = "running"
        self.port = _rpc_port(list(kwargs.get("command") or []))
        self.restart_count = 0
        self._start_server()

    def _start_server(self) -> None:
        if self.client.fake_carla is not None and self.port is not None:
            self.client.fake_carla._start_server("127.0.0.1", self.port)

    def _check(self) -> None:
        self.client._answer()
        if self.id not in self.client.containers._by_id:
            raise docker.errors.NotFound(f"No such container: {self.id}")

    def reload(self) -> None:
        self._check()

    def top(self) -> dict[str, Any]:
        """As `docker top`: a fake container has no host process."""
        self._check()
        return {"Titles": ["UID", "PID", "CMD"], "Processes": []}

    def logs(self, tail: int = 10) -> bytes:
        self._check()
        return b"fake CARLA server\n"

    def kill(self) -> None:
        """As `docker kill`: the server process dies."""
        self._check()
        self.status = "exited"
        if self.client.fake_carla is not None and self.port is not None:
            self.client.fake_carla._kill_server("127.0.0.1", self.port)

    def restart(self, timeout: int = 10) -> None:
        self._check()
        self.status = "running"
        self.restart_count += 1
        self._start_server()

    def stop(self, timeout: int = 10) -> None:
        self.kill()

    def remove(self, force: bool = False) -> None:
        self._check()
        if self.status == "running" and not force:
            raise docker.errors.APIError("cannot remove a running container without force")
        if self.status == "running":
            self.kill()
        del self.client.containers._by_id[self.id]


class FakeContainers:
    """client.containers: run, list (label filters ANDed, as Docker does), get."""

    def __init__(self, client: "FakeDockerClient"):
        self._client = client
        self._by_id: dict[str, FakeContainer] = {}
        self.run_calls: list[dict[str, Any]] = []

    def run(self, **kwargs: Any) -> FakeContainer:
        self._client._answer()
        if kwargs.get("image") not in self._client.images:
            raise docker.errors.ImageNotFound(f"No such image: {kwargs.get('image')}")
        self.run_calls.append(kwargs)
        container = FakeContainer(self._client, kwargs)
        self._by_id[container.id] = container
        return container

    def list(self, all: bool = False, filters: dict | None = None) -> list[FakeContainer]:  # noqa: A002
        self._client._answer()
        wanted = [tuple(f.split("=", 1)) for f in (filters or {}).get("label", [])]
        found = []
        for container in self._by_id.values():
            if not all and container.status != "running":
                continue
            if builtins.all(container.labels.get(k) == v for k, v in wanted):
                found.append(container)
        return found

    def get(self, container_id: str) -> FakeContainer:
        self._client._answer()
        for container in self._by_id.values():
            if container_id in (container.id, container.name):
                return container
        raise docker.errors.NotFound(f"No such container: {container_id}")


class FakeDockerClient:
    """docker.DockerClient stand-in holding containers in memory."""

    def __init__(self, fake_carla: Any = None, images: tuple[str, ...] = ("carlasim/carla:0.9.16",)):
        self.fake_carla = fake_carla
        self.images = set(images)
        self.containers = FakeContainers(self)
        self.gone_error: Exception | None = None
        self.refused_calls = 0  # calls made after the daemon went away

    def go_away(self, error: Exception) -> None:
        """The daemon stops answering: every later call raises `error`."""
        self.gone_error = error

    def _answer(self) -> None:
        if self.gone_error is not None:
            self.refused_calls += 1
            raise self.gone_error
