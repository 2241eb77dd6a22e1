"""CARLA server manager: launch arguments, readiness, label-scoped cleanup, restart, attach mode.

The same behaviour is checked twice: with a fake Docker client (always), and against a real
Docker daemon running a stand-in image (tests/docker_standin/) that listens on the RPC port in
place of CARLA. Start a daemon with tests/docker_standin/start_dockerd.sh; without one the
real-daemon tests skip and say why.
"""
from __future__ import annotations

import socket

import docker.errors
import pytest
import requests.exceptions

from control.carla import server as server_mod
from control.carla.clean import clean_run
from control.carla.clean import main as clean_main
from control.carla.config import validate_carla_config
from control.carla.server import (
    LABEL_HOST,
    LABEL_MANAGED,
    LABEL_RUN,
    LABEL_SLOT,
    AttachedServer,
    CarlaServerError,
    DockerServer,
    PortInUseError,
    server_for_runner,
    tcp_probe,
)
from tests.docker_standin.daemon import (
    DockerSocketProxy,
    daemon_socket_path,
    free_base_port,
    listening_on,
    real_docker_or_skip,
    remove_labelled,
)
from tests.docker_standin.fake_docker import FakeDockerClient


def launch_cfg(**overrides) -> dict:
    return validate_carla_config({"startup_timeout_s": 15.0, **overrides})


def counting(probe):
    calls = []

    def wrapped(host, port, timeout_s):
        answer = probe(host, port, timeout_s)
        calls.append(answer)
        return answer

    wrapped.calls = calls
    return wrapped


# ---------------------------------------------------------------------------------- fake Docker client
def test_launch_arguments_ports_labels_gpu_and_host_network():
    docker = FakeDockerClient()
    srv = server_for_runner(launch_cfg(port=3000, quality_level="Epic"), run_name="runA", runner_index=2,
                            is_evaluation=False, probe=lambda *a: True, docker_client=docker)
    srv.start()
    (kwargs,) = docker.containers.run_calls
    assert kwargs["image"] == "carlasim/carla:0.9.16"
    assert kwargs["network_mode"] == "host"
    assert {"-RenderOffScreen", "-carla-rpc-port=3020", "-carla-streaming-port=3021",
            "-quality-level=Epic"} <= set(kwargs["command"])
    assert kwargs["labels"][LABEL_RUN] == "runA" and kwargs["labels"][LABEL_SLOT] == "2"
    (request,) = kwargs["device_requests"]
    assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    one_gpu = DockerServer(launch_cfg(gpu="1"), srv.endpoint, "runA", tcp_probe, docker).run_kwargs()
    assert one_gpu["device_requests"][0]["DeviceIDs"] == ["1"]
    assert "device_requests" not in DockerServer(launch_cfg(gpu=None), srv.endpoint, "r", tcp_probe, docker).run_kwargs()


def test_close_stops_only_its_own_container_and_leftovers_of_its_slot_are_replaced():
    docker = FakeDockerClient()
    cfg = launch_cfg()
    a = server_for_runner(cfg, run_name="run", runner_index=1, is_evaluation=False, probe=lambda *x: True,
                          docker_client=docker)
    b = server_for_runner(cfg, run_name="run", runner_index=2, is_evaluation=False, probe=lambda *x: True,
                          docker_client=docker)
    a.start()
    b.start()
    # A restarted env runner (same run, same slot) first removes the container its dead predecessor left.
    a_again = server_for_runner(cfg, run_name="run", runner_index=1, is_evaluation=False, probe=lambda *x: True,
                                docker_client=docker)
    a_again.start()
    names = {c.name for c in docker.containers.list(all=True)}
    assert names == {b.container.name, a_again.container.name}
    b.close()
    assert {c.name for c in docker.containers.list(all=True)} == {a_again.container.name}
    server_mod._stop_all_at_exit()  # what atexit runs
    assert docker.containers.list(all=True) == []


def test_missing_image_and_dead_container_are_clear_errors():
    docker = FakeDockerClient(images=())
    srv = server_for_runner(launch_cfg(), run_name="r", runner_index=0, is_evaluation=False,
                            probe=lambda *a: False, docker_client=docker)
    with pytest.raises(CarlaServerError, match="docker pull carlasim/carla:0.9.16"):
        srv.start()
    docker.images.add("carlasim/carla:0.9.16")
    srv.container = None
    original_run = docker.containers.run

    def run_and_die(**kwargs):
        container = original_run(**kwargs)
        container.kill()
        return container

    docker.containers.run = run_and_die
    with pytest.raises(CarlaServerError, match="exited before it answered"):
        srv.start()
    srv.close()


def test_clean_removes_a_runs_containers_by_label_only():
    docker = FakeDockerClient()
    docker.containers.run(image="carlasim/carla:0.9.16", name="mine", labels={LABEL_MANAGED: "1", LABEL_RUN: "r1"})
    docker.containers.run(image="carlasim/carla:0.9.16", name="other-run", labels={LABEL_MANAGED: "1", LABEL_RUN: "r2"})
    docker.containers.run(image="carlasim/carla:0.9.16", name="someone", labels={})
    assert clean_run("r1", docker_client=docker) == ["mine"]
    assert sorted(c.name for c in docker.containers.list(all=True)) == ["other-run", "someone"]


def test_attach_mode_never_launches_and_launch_mode_refuses_remote_hosts():
    docker = FakeDockerClient()
    srv = server_for_runner(launch_cfg(avoid_server_init=True), run_name="r", runner_index=1, is_evaluation=False,
                            probe=lambda *a: True, docker_client=docker)
    assert isinstance(srv, AttachedServer)
    srv.start()
    srv.restart()
    srv.close()
    assert docker.containers.run_calls == []
    with pytest.raises(Exception, match="avoid_server_init: true"):
        server_for_runner(launch_cfg(host="10.1.2.3"), run_name="r", runner_index=1, is_evaluation=False)


def test_clean_cli_reports_a_missing_daemon_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert clean_main(["--run", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "avoid_server_init" in err


@pytest.mark.parametrize("offset, name", [(0, "RPC"), (1, "streaming"), (2, "Traffic Manager")])
def test_launch_refuses_a_derived_port_that_already_answers(offset, name):
    # Someone else's server (a real listening socket) on one of slot 1's ports: launch mode must not drive it.
    docker = FakeDockerClient()
    base = free_base_port()
    cfg = launch_cfg(port=base)
    srv = server_for_runner(cfg, run_name="r", runner_index=1, is_evaluation=False, probe=tcp_probe,
                            docker_client=docker)
    busy_port = srv.endpoint.rpc_port + offset
    with listening_on(busy_port):
        with pytest.raises(PortInUseError) as info:
            srv.start()
        message = str(info.value)
        assert "\n" not in message
        assert f"{name} port {busy_port} " in message and "avoid_server_init: true" in message
        assert "port_stride" in message
        assert docker.containers.run_calls == []  # nothing was launched
        if name == "RPC":  # attach mode, which the message suggests, drives the very same server
            attached = server_for_runner(launch_cfg(port=base, avoid_server_init=True, timeout_s=2.0), run_name="r",
                                         runner_index=1, is_evaluation=False, probe=tcp_probe, docker_client=docker)
            attached.start()


def test_a_port_answering_while_our_container_is_not_running_is_not_taken_for_our_server():
    # The RPC port answers, but the container we launched exited: whoever answers is not our server.
    docker = FakeDockerClient()
    srv = server_for_runner(launch_cfg(), run_name="r", runner_index=0, is_evaluation=False,
                            probe=lambda *a: True, docker_client=docker)
    original_run = docker.containers.run

    def run_and_die(**kwargs):
        container = original_run(**kwargs)
        container.kill()
        return container

    docker.containers.run = run_and_die
    with pytest.raises(PortInUseError, match="not running"):
        srv.start()
    srv.close()


@pytest.mark.parametrize("error", [
    docker.errors.DockerException("Error while fetching server API version"),
    requests.exceptions.ConnectionError("('Connection aborted.', FileNotFoundError(2, 'No such file'))"),
    docker.errors.APIError("500 Server Error: Internal Server Error"),
], ids=["DockerException", "ConnectionError", "APIError"])
def test_a_docker_daemon_that_goes_away_is_a_one_line_server_error(error):
    docker = FakeDockerClient()
    srv = server_for_runner(launch_cfg(), run_name="r", runner_index=0, is_evaluation=False,
                            probe=lambda *a: True, docker_client=docker)
    srv.start()
    container = srv.container
    docker.go_away(error)
    with pytest.raises(CarlaServerError, match="Docker daemon failed while") as info:
        srv.restart()
    assert "\n" not in str(info.value) and f"port {srv.endpoint.rpc_port}" in str(info.value)
    srv.container = None  # a fresh launch against the gone daemon is the same one-line error
    with pytest.raises(CarlaServerError, match="Docker daemon failed while"):
        srv.start()
    srv.container = container
    srv.close()  # close() never raises because Docker went away (it logs what to clean up)


# ---------------------------------------------------------------------------------- real Docker daemon
@pytest.fixture(scope="module")
def real_docker():
    client, image = real_docker_or_skip()
    yield client, image
    remove_labelled(client)
    client.close()


def test_real_daemon_launch_arguments_and_readiness_wait(real_docker):
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    probe = counting(tcp_probe)
    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=1, is_evaluation=False, probe=probe,
                            docker_client=client)
    try:
        srv.start()
        # The stand-in listens only after a 1 s delay: start() polled until the port answered.
        assert probe.calls[0] is False and probe.calls[-1] is True
        assert tcp_probe("127.0.0.1", srv.endpoint.rpc_port, 1.0)
        attrs = client.containers.get(srv.container.id).attrs
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        assert f"-carla-rpc-port={srv.endpoint.rpc_port}" in attrs["Config"]["Cmd"]
        assert f"-carla-streaming-port={srv.endpoint.rpc_port + 1}" in attrs["Config"]["Cmd"]
        labels = attrs["Config"]["Labels"]
        assert labels[LABEL_RUN] == "pytest-standin" and labels[LABEL_SLOT] == "1" and LABEL_HOST in labels
    finally:
        srv.close()
    assert client.containers.list(all=True, filters={"id": attrs["Id"]}) == []


def test_real_daemon_accepts_the_gpu_device_request(real_docker):
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu="all", port=free_base_port())
    srv = DockerServer(cfg, server_for_runner(cfg, run_name="pytest-standin", runner_index=0, is_evaluation=False,
                                              docker_client=client).endpoint, "pytest-standin", tcp_probe, client)
    kwargs = srv.run_kwargs()
    kwargs.pop("detach")
    container = client.containers.create(**kwargs)  # created, not started: this machine has no GPU runtime
    try:
        (request,) = container.attrs["HostConfig"]["DeviceRequests"]
        assert request["Count"] == -1 and request["Capabilities"] == [["gpu"]]
    finally:
        container.remove(force=True)


def test_real_daemon_restart_after_the_container_is_killed(real_docker):
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=2, is_evaluation=False, probe=tcp_probe,
                            docker_client=client)
    try:
        srv.start()
        first_id = srv.container.id
        srv.container.kill()
        srv.container.reload()
        assert srv.container.status == "exited"
        assert not tcp_probe("127.0.0.1", srv.endpoint.rpc_port, 0.5)
        srv.restart()
        assert srv.container.id == first_id  # the same container, restarted: its handle is kept
        assert tcp_probe("127.0.0.1", srv.endpoint.rpc_port, 1.0)
    finally:
        srv.close()


def test_real_daemon_label_scoped_cleanup_spares_other_containers(real_docker):
    client, image = real_docker
    base = free_base_port()
    cfg = launch_cfg(image=image, gpu=None, port=base)
    mine = server_for_runner(cfg, run_name="pytest-standin", runner_index=3, is_evaluation=False, probe=tcp_probe,
                             docker_client=client)
    mine.start()
    other_labels = {LABEL_MANAGED: "1", LABEL_RUN: "pytest-other-run"}
    other = client.containers.run(image, ["bash", "./CarlaUE4.sh", f"-carla-rpc-port={base + 90}"], detach=True,
                                  network_mode="host", labels=other_labels)
    unlabelled = client.containers.run(image, ["bash", "./CarlaUE4.sh", f"-carla-rpc-port={base + 95}"], detach=True,
                                       network_mode="host")
    try:
        removed = clean_run("pytest-standin", docker_client=client)
        assert removed == [mine.container.name]
        remaining = {c.id for c in client.containers.list(all=True)}
        assert other.id in remaining and unlabelled.id in remaining and mine.container.id not in remaining
    finally:
        mine.close()  # already gone: close() must not fail
        other.remove(force=True)
        unlabelled.remove(force=True)


def test_real_daemon_attach_mode_never_launches(real_docker):
    client, _ = real_docker
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    before = {c.id for c in client.containers.list(all=True)}
    try:
        cfg = launch_cfg(avoid_server_init=True, endpoints=[f"127.0.0.1:{port}"], timeout_s=5.0)
        srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=0, is_evaluation=False,
                                probe=tcp_probe, docker_client=client)
        srv.start()
        srv.restart()
        srv.close()
    finally:
        listener.close()
    assert {c.id for c in client.containers.list(all=True)} == before


def test_real_daemon_launch_refuses_a_port_someone_else_serves(real_docker):
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=1, is_evaluation=False, probe=tcp_probe,
                            docker_client=client)
    labelled = {"label": [f"{LABEL_RUN}=pytest-standin", f"{LABEL_SLOT}=1"]}
    with listening_on(srv.endpoint.rpc_port):
        with pytest.raises(PortInUseError, match=f"RPC port {srv.endpoint.rpc_port} .*avoid_server_init: true"):
            srv.start()
    assert client.containers.list(all=True, filters=labelled) == []  # no container was started


def test_real_daemon_restart_refuses_a_port_taken_while_our_container_was_down(real_docker):
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=2, is_evaluation=False, probe=tcp_probe,
                            docker_client=client)
    try:
        srv.start()
        srv.container.kill()
        srv.container.reload()
        with listening_on(srv.endpoint.rpc_port):  # someone else grabbed the port while ours was dead
            with pytest.raises(PortInUseError, match=f"RPC port {srv.endpoint.rpc_port} "):
                srv.restart()
        srv.container.reload()
        assert srv.container.status == "exited"  # ours was not restarted onto a port it cannot own
    finally:
        srv.close()


def test_real_daemon_going_away_mid_run_is_a_one_line_server_error(real_docker):
    # The SDK client talks to the real daemon through a socket proxy; stopping the proxy is the daemon going
    # away for this client only (other tests keep the daemon).
    client, image = real_docker
    target = daemon_socket_path()
    if target is None:
        pytest.skip("DOCKER_HOST is not a unix socket: cannot put a proxy in front of it")
    proxy = DockerSocketProxy(target)
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=0, is_evaluation=False, probe=tcp_probe,
                            docker_client=proxy.client())
    try:
        srv.start()
        container_id = srv.container.id
        proxy.stop()
        client.containers.get(container_id).kill()  # the server died too
        with pytest.raises(CarlaServerError, match="Docker daemon failed while") as info:
            srv.restart()
        assert "\n" not in str(info.value)
        srv.close()  # must not raise although the daemon is unreachable for it
    finally:
        proxy.stop()
        remove_labelled(client)


def test_real_daemon_a_restarted_runner_replaces_its_predecessors_container_without_a_port_error(real_docker):
    # A runner that died left its container holding the slot's ports: that container is ours (same run, slot
    # and node), so the new runner removes it and launches, rather than refusing the port.
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    dead_runner = server_for_runner(cfg, run_name="pytest-standin", runner_index=1, is_evaluation=False,
                                    probe=tcp_probe, docker_client=client)
    dead_runner.start()
    server_mod._LIVE.discard(dead_runner)  # its process is gone: nobody will close it
    successor = server_for_runner(cfg, run_name="pytest-standin", runner_index=1, is_evaluation=False,
                                  probe=tcp_probe, docker_client=client)
    try:
        successor.start()
        assert successor.container.id != dead_runner.container.id
        assert client.containers.list(all=True, filters={"id": dead_runner.container.id}) == []
    finally:
        successor.close()


def test_real_daemon_a_server_answering_in_place_of_our_container_is_refused(real_docker):
    # Someone starts listening on the RPC port right after our launch, while the stand-in still waits its 1 s
    # before listening: the port answers, our container runs, but the answer is not from our container.
    client, image = real_docker
    cfg = launch_cfg(image=image, gpu=None, port=free_base_port())
    squatter = []

    def probe_after_someone_took_the_port(host, port, timeout_s):
        if not squatter:
            squatter.append(listening_on(port))
            squatter[0].__enter__()
        return tcp_probe(host, port, timeout_s)

    srv = server_for_runner(cfg, run_name="pytest-standin", runner_index=3, is_evaluation=False,
                            probe=probe_after_someone_took_the_port, docker_client=client)
    try:
        with pytest.raises(PortInUseError, match="answers from a process outside the container we launched"):
            srv.start()
    finally:
        if squatter:
            squatter[0].__exit__(None, None, None)
        srv.close()
