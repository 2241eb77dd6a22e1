"""CARLA server manager: attach to a running server, or launch one Docker container per env runner.

A launched container is labelled with the run name and its port slot, runs with host networking
(CARLA's own recommendation), and is stopped by the manager that started it: on close, at
interpreter exit, and, should a previous incarnation of the same runner have died without
cleaning up, when the same run and slot launch again. Nothing is ever killed by name or image.

Launch mode never drives a server it did not start: before a container is launched (or a dead
one of ours restarted) the slot's derived ports must be free, else PortInUseError names the port;
after launch, the RPC port must answer from our running container (its process, where /proc
shows the listener's owner), else the same error. A Docker
daemon that stops answering (DockerException, requests' ConnectionError, APIError) turns into
CarlaServerError, which the backend handles like a dead server: bounded restarts, then one line.
"""
from __future__ import annotations

import atexit
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from control.carla.port_owner import container_owns_port
from control.carla.ports import ServerEndpoint, endpoint_for_runner
from control.errors import ConfigError

log = logging.getLogger(__name__)

LABEL_RUN = "racer.carla.run"  # the run name; `python -m control.carla.clean --run NAME` filters on it
LABEL_SLOT = "racer.carla.slot"  # the port slot of the runner that owns the container
LABEL_HOST = "racer.carla.host"  # the node that launched it (slots repeat across nodes)
LABEL_MANAGED = "racer.carla.managed"  # "1" on every container this project starts

Probe = Callable[[str, int, float], bool]


class CarlaServerError(RuntimeError):
    """A CARLA server that cannot be started, reached or restarted."""


class PortInUseError(ConfigError):
    """Launch mode found a derived port taken by a server it did not start (a user error: not retried)."""


def tcp_probe(host: str, port: int, timeout_s: float) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# How long a connect to a derived port may take before the port counts as free, s (a local refusal is instant).
PORT_CHECK_TIMEOUT_S = 0.5


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _docker_unreachable_errors() -> tuple[type[BaseException], ...]:
    """What the Docker SDK raises when the daemon is gone or failing: its own errors and requests' ones."""
    import docker.errors
    import requests.exceptions

    return docker.errors.DockerException, requests.exceptions.RequestException


def answering_ports(host: str, ports: dict[str, int]) -> list[tuple[str, int]]:
    """The (name, port) pairs of `ports` on which something already accepts TCP connections."""
    return [(name, port) for name, port in ports.items() if tcp_probe(host, port, PORT_CHECK_TIMEOUT_S)]


def port_in_use_error(endpoint: ServerEndpoint, name: str, port: int, detail: str = "already answers") -> PortInUseError:
    """The one-line error for a derived port held by a server this runner did not start."""
    return PortInUseError(
        f"env_config.carla: {name} port {port} of CARLA slot {endpoint.slot} on {endpoint.host} {detail}, and launch "
        f"mode never drives a server it did not start; set avoid_server_init: true to attach to that server, "
        f"or move this run's ports with port / port_stride")


def carla_probe(carla_module: Any) -> Probe:
    """A probe that asks the CARLA server for its version (the server answers RPC, not just TCP)."""

    def probe(host: str, port: int, timeout_s: float) -> bool:
        try:
            client = carla_module.Client(host, port)
            client.set_timeout(timeout_s)
            client.get_server_version()
            return True
        except RuntimeError:
            return False

    return probe


def wait_until_ready(endpoint: ServerEndpoint, probe: Probe, timeout_s: float,
                     is_dead: Callable[[], str | None] = lambda: None, poll_s: float = 0.2) -> None:
    """Poll `probe` until the server answers; raise CarlaServerError after `timeout_s` or when it died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe(endpoint.host, endpoint.rpc_port, min(2.0, timeout_s)):
            return
        why_dead = is_dead()
        if why_dead:
            raise CarlaServerError(f"CARLA server for {endpoint.host}:{endpoint.rpc_port} exited before "
                                   f"it answered: {why_dead}")
        if time.monotonic() >= deadline:
            raise CarlaServerError(f"CARLA server at {endpoint.host}:{endpoint.rpc_port} did not answer within "
                                   f"{timeout_s:.0f} s; is it running and is the port right?")
        time.sleep(poll_s)


class AttachedServer:
    """A server someone else runs (avoid_server_init: true): never launched, never stopped."""

    launches = False

    def __init__(self, endpoint: ServerEndpoint, probe: Probe, timeout_s: float):
        self.endpoint = endpoint
        self._probe = probe
        self._timeout_s = timeout_s

    def start(self) -> None:
        """Wait until the attached server answers."""
        wait_until_ready(self.endpoint, self._probe, self._timeout_s)

    def restart(self) -> None:
        """An attached server cannot be restarted from here: wait for it to come back."""
        self.start()

    def close(self) -> None:
        """Nothing to release: the server is not ours."""

    def describe(self) -> str:
        """One-line description for error messages."""
        return f"attached server {self.endpoint.host}:{self.endpoint.rpc_port}"


# Containers started by this process and not yet stopped; stopped at interpreter exit.
_LIVE: set[DockerServer] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.close()


atexit.register(_stop_all_at_exit)


def _sanitize(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", text)[:60] or "run"


def docker_client_from_env() -> Any:
    """docker.from_env(), turning 'no daemon' into a one-line CarlaServerError that says what to do."""
    import docker

    try:
        return docker.from_env()
    except docker.errors.DockerException as exc:
        raise CarlaServerError(
            f"launching a CARLA server needs a Docker daemon ({exc}); start Docker with the NVIDIA container "
            f"toolkit, or run servers yourself and set env_config.carla.avoid_server_init: true") from None


class DockerServer:
    """One CARLA container this process launched, with the handle kept so exactly it is stopped."""

    launches = True

    def __init__(self, cfg: dict, endpoint: ServerEndpoint, run_name: str, probe: Probe,
                 docker_client: Any = None):
        self.cfg = cfg
        self.endpoint = endpoint
        self.run_name = run_name
        self._probe = probe
        self._docker = docker_client
        self.container: Any = None

    # --- what gets launched ---
    def labels(self) -> dict[str, str]:
        """Labels of the container: run name, slot, node, plus the user's."""
        return {**self.cfg["labels"], LABEL_MANAGED: "1", LABEL_RUN: self.run_name,
                LABEL_SLOT: str(self.endpoint.slot), LABEL_HOST: socket.gethostname()}

    def command(self) -> list[str]:
        """CarlaUE4.sh arguments: off-screen rendering, the slot's ports, quality level, no sound."""
        return ["bash", "./CarlaUE4.sh", "-RenderOffScreen", "-nosound",
                f"-carla-rpc-port={self.endpoint.rpc_port}",
                f"-carla-streaming-port={self.endpoint.streaming_port}",
                f"-quality-level={self.cfg['quality_level']}", *self.cfg["extra_args"]]

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of docker's containers.create/run for this server."""
        from docker.types import DeviceRequest

        kwargs: dict[str, Any] = {
            "image": self.cfg["image"],
            "command": self.command(),
            "name": _sanitize(f"racer-carla-{self.run_name}-s{self.endpoint.slot}-{uuid.uuid4().hex[:6]}"),
            "labels": self.labels(),
            # Host networking: the derived ports are the host's ports, as CARLA's Docker guide runs it.
            "network_mode": "host",
            "detach": True,
        }
        gpu = self.cfg["gpu"]
        if gpu is not None:
            request = (DeviceRequest(count=-1, capabilities=[["gpu"]]) if gpu == "all"
                       else DeviceRequest(device_ids=[gpu], capabilities=[["gpu"]]))
            kwargs["device_requests"] = [request]
        return kwargs

    # --- lifecycle ---
    def _client(self) -> Any:
        if self._docker is None:
            self._docker = docker_client_from_env()
        return self._docker

    def _remove_stale(self) -> None:
        """Remove containers of this run and slot on this node left by a dead earlier incarnation."""
        filters = {"label": [f"{LABEL_RUN}={self.run_name}", f"{LABEL_SLOT}={self.endpoint.slot}",
                             f"{LABEL_HOST}={socket.gethostname()}"]}
        for stale in self._client().containers.list(all=True, filters=filters):
            if self.container is not None and stale.id == self.container.id:
                continue
            log.warning("removing leftover CARLA container %s of run %s slot %s", stale.name, self.run_name,
                        self.endpoint.slot)
            _remove_quietly(stale)

    def _why_dead(self) -> str | None:
        """None while our container runs, else why it does not (CarlaServerError when Docker cannot say)."""
        import docker

        try:
            self.container.reload()
            if self.container.status not in ("exited", "dead"):
                return None
            tail = self.container.logs(tail=5).decode(errors="replace").strip().replace("\n", " | ")
        except docker.errors.NotFound:
            return "the container was removed"
        except _docker_unreachable_errors() as exc:
            raise self._daemon_error("checking the container", exc) from None
        return f"container {self.container.name} is {self.container.status} (last log: {tail or 'empty'})"

    def _daemon_error(self, doing: str, exc: BaseException) -> CarlaServerError:
        return CarlaServerError(f"Docker daemon failed while {doing} (CARLA slot {self.endpoint.slot}, port "
                                f"{self.endpoint.rpc_port}): {_one_line(exc)}")

    def _require_free_ports(self, ports: dict[str, int]) -> None:
        """PortInUseError when something (not a container of ours) already answers on one of `ports`."""
        busy = answering_ports(self.endpoint.host, ports)
        if busy:
            name, port = busy[0]
            raise port_in_use_error(self.endpoint, name, port)

    def _container_pids(self) -> list[int]:
        """Host PIDs of the container's processes (as `docker top` reports them)."""
        try:
            top = self.container.top()
        except _docker_unreachable_errors() as exc:
            raise self._daemon_error("listing the container's processes", exc) from None
        column = top["Titles"].index("PID")
        return [int(row[column]) for row in top["Processes"]]

    def _confirm_ours(self) -> None:
        """After the RPC port answered: it must be our running container answering, not someone else."""
        why_dead = self._why_dead()
        if why_dead:
            raise port_in_use_error(self.endpoint, "RPC", self.endpoint.rpc_port,
                                    f"answers although the container we launched is not running ({why_dead})")
        # Where /proc shows it (same host and PID namespace), the listener must be one of the container's processes.
        if container_owns_port(self.endpoint.rpc_port, self.container.id, self._container_pids()) is False:
            raise port_in_use_error(self.endpoint, "RPC", self.endpoint.rpc_port,
                                    f"answers from a process outside the container we launched ({self.container.name})")

    def start(self) -> None:
        """Launch the container (removing this slot's leftovers first) and wait until it answers."""
        import docker

        if self.container is None:
            try:
                self._remove_stale()
            except _docker_unreachable_errors() as exc:
                raise self._daemon_error("listing leftover containers", exc) from None
            # Only after our own leftovers are gone: whatever still answers is not ours.
            self._require_free_ports({"RPC": self.endpoint.rpc_port, "streaming": self.endpoint.streaming_port,
                                      "Traffic Manager": self.endpoint.tm_port})
            try:
                self.container = self._client().containers.run(**self.run_kwargs())
            except docker.errors.ImageNotFound:
                raise CarlaServerError(f"Docker image {self.cfg['image']!r} is not on this machine; "
                                       f"run `docker pull {self.cfg['image']}`") from None
            except docker.errors.APIError as exc:
                raise CarlaServerError(f"Docker could not start {self.cfg['image']}: "
                                       f"{_one_line(exc.explanation or exc)}") from None
            except _docker_unreachable_errors() as exc:
                raise self._daemon_error("launching the container", exc) from None
            with _LIVE_LOCK:
                _LIVE.add(self)
            log.info("launched CARLA container %s on port %d", self.container.name, self.endpoint.rpc_port)
        wait_until_ready(self.endpoint, self._probe, self.cfg["startup_timeout_s"], self._why_dead)
        self._confirm_ours()

    def restart(self) -> None:
        """Restart the container this manager owns (a new one if it is gone) and wait until it answers."""
        import docker

        if self.container is not None:
            try:
                if self._why_dead():
                    # Our server is down, so its ports must be free; the Traffic Manager port is left out because
                    # the Traffic Manager runs in the client (this process) and may still hold it.
                    self._require_free_ports({"RPC": self.endpoint.rpc_port,
                                              "streaming": self.endpoint.streaming_port})
                self.container.restart(timeout=5)
            except docker.errors.NotFound:
                self.container = None
            except _docker_unreachable_errors() as exc:
                raise self._daemon_error("restarting the container", exc) from None
        self.start()

    def close(self) -> None:
        """Stop and remove exactly the container this manager started."""
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self.container is not None:
            _remove_quietly(self.container)
            self.container = None

    def describe(self) -> str:
        """One-line description for error messages."""
        name = self.container.name if self.container is not None else "(not started)"
        return f"container {name} ({self.cfg['image']}) on port {self.endpoint.rpc_port}"


def _remove_quietly(container: Any) -> None:
    import docker

    try:
        container.remove(force=True)  # SIGKILL + remove: a CARLA server has no state worth a graceful stop
    except docker.errors.NotFound:
        pass
    except _docker_unreachable_errors() as exc:  # close() must not fail because Docker went away
        labels = getattr(container, "labels", None) or {}
        log.warning("could not remove CARLA container %s (%s); once Docker answers, run "
                    "`python -m control.carla.clean --run %s`", getattr(container, "name", "?"), _one_line(exc),
                    labels.get(LABEL_RUN, "<run>"))


def server_for_runner(cfg: dict, *, run_name: str, runner_index: int, is_evaluation: bool,
                      vector_index: int = 0, probe: Probe | None = None,
                      docker_client: Any = None) -> AttachedServer | DockerServer:
    """The server an env runner uses: attached (avoid_server_init) or a container launched for its slot."""
    endpoint = endpoint_for_runner(cfg, runner_index, is_evaluation, vector_index)
    probe = probe or tcp_probe
    if cfg["avoid_server_init"]:
        return AttachedServer(endpoint, probe, cfg["timeout_s"])
    if endpoint.host not in ("127.0.0.1", "localhost"):
        raise ConfigError(f"env_config.carla.host is {endpoint.host!r} but launch mode runs the server on this "
                          f"node (127.0.0.1); set avoid_server_init: true to attach to a remote server")
    name = cfg["run_name"] or run_name
    return DockerServer(cfg, endpoint, _sanitize(name), probe, docker_client)
