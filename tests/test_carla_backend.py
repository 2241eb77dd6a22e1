"""CARLA backend against the fake `carla` module: sync mode, sensors, actors, recovery, config, ports."""
from __future__ import annotations

import math

import docker.errors
import numpy as np
import pytest
import requests.exceptions

from control.carla import backend as backend_mod
from control.carla import server as server_mod
from control.carla.backend import CarlaSimulator, CarlaUnavailableError
from control.carla.config import DEFAULT_CARLA_CONFIG, rllib_fault_tolerance_settings, validate_carla_config
from control.carla.ports import endpoint_for_runner
from control.carla.server import LABEL_RUN
from control.errors import ConfigError, UserError
from control.sim.base import Pose, SimulatorError
from tests import fake_carla as fc
from tests.docker_standin.daemon import (
    DockerSocketProxy,
    daemon_socket_path,
    free_base_port,
    real_docker_or_skip,
    remove_labelled,
)
from tests.docker_standin.fake_docker import FakeDockerClient

ACTORS_PER_EPISODE = 4  # ego vehicle, RGB camera, collision sensor, lane-invasion sensor


@pytest.fixture(autouse=True)
def fresh_fake():
    fc._reset_all()
    yield
    fc._reset_all()


def make_sim(cfg: dict | None = None, **kwargs) -> CarlaSimulator:
    cfg = {"avoid_server_init": True, "timeout_s": 1.0, **(cfg or {})}
    kwargs = {"run_name": "test", "runner_index": 0, "is_evaluation": False, "control_hz": 15.0,
              "carla_module": fc, **kwargs}
    return CarlaSimulator(cfg, None, **kwargs)


def start_pose(sim: CarlaSimulator, s_m: float = 0.0) -> Pose:
    (pos,), (heading,) = sim.load_track().point_at(s_m)
    return Pose(float(pos[0]), float(pos[1]), float(heading))


# ------------------------------------------------------------------ sync mode and settings
def test_sync_mode_applied_while_running_and_restored_on_close():
    server = fc._start_server(port=2000)
    server.settings.fixed_delta_seconds = 0.2  # someone else's settings, which close() must give back
    sim = make_sim({"fixed_delta_seconds": 1 / 30, "traffic": {"enabled": True, "vehicles": 2}})
    sim.reset(start_pose(sim))
    assert server.settings.synchronous_mode is True
    assert server.settings.fixed_delta_seconds == pytest.approx(1 / 30)
    assert server.traffic_manager_sync[sim.endpoint.tm_port] is True
    frame = server.frame
    sim.step(0.0, 1.0)
    assert server.frame == frame + 2  # 1/15 s control period = 2 ticks of 1/30 s
    sim.close()
    assert server.settings.synchronous_mode is False
    assert server.settings.fixed_delta_seconds == 0.2
    assert server.traffic_manager_sync[sim.endpoint.tm_port] is False
    assert server.actors == {}


def test_fixed_delta_that_does_not_divide_the_control_period_is_a_config_error():
    with pytest.raises(ConfigError, match="must divide the control period"):
        make_sim({"fixed_delta_seconds": 0.03})


# ------------------------------------------------------------------ sensors
def test_camera_frame_returned_is_the_one_of_the_last_tick():
    server = fc._start_server(port=2000)
    sim = make_sim({"fixed_delta_seconds": 1 / 45, "camera": {"width_px": 32, "height_px": 24}})
    sim.reset(start_pose(sim))
    for _ in range(25):
        state = sim.step(0.05, 2.0)
        image = sim.camera_image()
        assert image.shape == (24, 32, 3) and image.dtype == np.uint8
        # The fake paints frame % 256 into blue and frame // 256 into green (RGB order after BGRA decoding).
        frame_in_image = int(image[0, 0, 2]) + 256 * int(image[0, 0, 1])
        assert frame_in_image == state.extra["frame"] == server.frame
        assert image[0, 0, 0] == 7


def test_collision_and_lane_invasion_reach_the_state():
    sim = make_sim()
    sim.reset(start_pose(sim))
    crashed = invaded = False
    for _ in range(60):  # steer hard right (outwards on this loop) into the wall
        state = sim.step(-0.5, 4.0)
        invaded |= state.lane_invasion
        crashed |= state.is_crashed
    assert invaded and crashed
    state = sim.reset(start_pose(sim))
    assert not state.is_crashed  # events of the last episode do not leak into the next


def test_no_camera_when_disabled_or_no_rendering():
    sim = make_sim({"camera": {"enabled": False}})
    sim.reset(start_pose(sim))
    sim.step(0.0, 1.0)
    assert sim.camera_image() is None
    assert len(fc._get_server().actors) == ACTORS_PER_EPISODE - 1


# ------------------------------------------------------------------ actors
def test_1000_resets_leave_zero_live_actors_and_spare_other_clients_actors():
    server = fc._start_server(port=2000)
    other_world = fc.Client("127.0.0.1", 2000).get_world()
    bp = other_world.get_blueprint_library().find("vehicle.audi.tt")
    someone_elses = other_world.spawn_actor(bp, fc.Transform(fc.Location(0.0, 0.0, 0.0)))
    sim = make_sim({"camera": {"width_px": 8, "height_px": 8}})
    pose = start_pose(sim)
    for episode in range(1000):
        sim.reset(pose)
        if episode % 100 == 0:
            sim.step(0.0, 1.0)
        assert len(server.actors) == ACTORS_PER_EPISODE + 1
    sim.close()
    assert list(server.actors) == [someone_elses.id]


# ------------------------------------------------------------------ vehicle state
def test_pose_round_trip_and_steering_sign_in_the_right_handed_frame():
    sim = make_sim()
    pose = start_pose(sim, 20.0)
    state = sim.reset(pose)
    assert (state.x_m, state.y_m) == pytest.approx((pose.x_m, pose.y_m), abs=1e-6)
    assert math.cos(state.yaw_rad - pose.yaw_rad) == pytest.approx(1.0)
    assert state.wheel_positions_m.shape == (4, 2)
    front_mid = state.wheel_positions_m[:2].mean(axis=0) - [state.x_m, state.y_m]
    assert front_mid @ [math.cos(pose.yaw_rad), math.sin(pose.yaw_rad)] > 1.0  # front wheels ahead
    left = state.wheel_positions_m[0] - state.wheel_positions_m[1]  # FL - FR points left
    assert left @ [-math.sin(pose.yaw_rad), math.cos(pose.yaw_rad)] > 1.0
    for _ in range(15):
        state = sim.step(0.3, 3.0)  # + = left, as in DeepRacer
    turned = math.atan2(math.sin(state.yaw_rad - pose.yaw_rad), math.cos(state.yaw_rad - pose.yaw_rad))
    assert turned > 0.2
    assert state.steering_rad == pytest.approx(0.3, abs=1e-6)


def test_speed_controller_holds_the_commanded_speed():
    sim = make_sim()
    sim.reset(start_pose(sim))
    for _ in range(90):
        state = sim.step(0.0, 3.0)
    assert state.speed_mps == pytest.approx(3.0, abs=0.3)
    for _ in range(45):
        state = sim.step(0.0, 0.0)
    assert state.speed_mps < 0.3


# ------------------------------------------------------------------ recovery
def test_server_death_ends_the_step_and_the_next_reset_restarts_the_owned_container():
    docker = FakeDockerClient(fake_carla=fc)
    sim = make_sim({"avoid_server_init": False, "gpu": None}, docker_client=docker)
    sim.reset(start_pose(sim))
    container = docker.containers.list()[0]
    for _ in range(5):
        sim.step(0.0, 2.0)
    container.kill()
    with pytest.raises(SimulatorError, match="time-out"):
        sim.step(0.0, 2.0)
    state = sim.reset(start_pose(sim))
    assert container.restart_count == 1 and sim.restarts == 1
    assert state.extra["restarts"] == 1
    for _ in range(5):
        sim.step(0.0, 2.0)
    assert fc._get_server(port=container.port).settings.synchronous_mode is True
    sim.close()
    assert docker.containers.list(all=True) == []


def test_attached_server_that_comes_back_is_reconnected():
    fc._start_server(port=2000, die_after_ticks=10)
    sim = make_sim({"retries": {"max_restarts": 3, "backoff_s": 0.01}})
    sim.reset(start_pose(sim))
    with pytest.raises(SimulatorError):
        for _ in range(20):
            sim.step(0.0, 2.0)
    fc._start_server(port=2000)  # the operator restarts it
    sim.reset(start_pose(sim))
    sim.step(0.0, 2.0)
    assert sim.restarts == 1


def test_retries_exhausted_is_a_clear_error():
    fc._start_server(port=2000)
    sim = make_sim({"timeout_s": 0.2, "retries": {"max_restarts": 2, "backoff_s": 0.01}})
    sim.reset(start_pose(sim))
    fc._kill_server(port=2000)
    with pytest.raises(SimulatorError):
        sim.step(0.0, 1.0)
    with pytest.raises(CarlaUnavailableError, match=r"unreachable after 2 restart\(s\) of attached server 127.0.0.1:2000"):
        sim.reset(start_pose(sim))


@pytest.mark.parametrize("error", [
    docker.errors.DockerException("Error while fetching server API version"),
    requests.exceptions.ConnectionError("('Connection aborted.', ConnectionRefusedError(111, 'Connection refused'))"),
], ids=["DockerException", "ConnectionError"])
def test_docker_daemon_gone_mid_run_is_bounded_restarts_with_backoff_then_one_line(error, monkeypatch):
    docker = FakeDockerClient(fake_carla=fc)
    sim = make_sim({"avoid_server_init": False, "gpu": None, "timeout_s": 0.2,
                    "retries": {"max_restarts": 3, "backoff_s": 0.5}}, docker_client=docker)
    sim.reset(start_pose(sim))
    sim.step(0.0, 2.0)
    container = docker.containers.list()[0]
    container.kill()  # the server dies, and the daemon with it
    docker.go_away(error)
    with pytest.raises(SimulatorError):
        sim.step(0.0, 2.0)  # the episode ends (truncated by the env)
    waits_s: list[float] = []
    monkeypatch.setattr(backend_mod.time, "sleep", waits_s.append)
    with pytest.raises(CarlaUnavailableError) as info:
        sim.reset(start_pose(sim))
    message = str(info.value)
    assert "\n" not in message and isinstance(info.value, UserError)  # the CLI prints it as one line
    assert f"unreachable after 3 restart(s) of container {container.name}" in message
    assert "last error: Docker daemon failed while" in message
    assert waits_s == [0.5, 1.0]  # exponential backoff between the 3 tries
    assert docker.refused_calls == 3  # one Docker call per try: bounded, no retry storm
    sim.close()  # the daemon is gone: close logs what to clean up instead of raising


def test_attach_mode_never_launches_a_container():
    docker = FakeDockerClient(fake_carla=fc)
    sim = make_sim({"avoid_server_init": True}, docker_client=docker)
    sim.reset(start_pose(sim))
    sim.step(0.0, 1.0)
    sim.close()
    assert docker.containers.run_calls == []


def test_missing_map_names_the_closest_available_one():
    sim = make_sim({"map": "Town4"})
    with pytest.raises(ConfigError, match="did you mean 'Town04'"):
        sim.ensure_started()  # connecting loads the map


# ------------------------------------------------------------------ ports and config
def test_ports_are_distinct_across_four_training_and_one_evaluation_runner():
    cfg = validate_carla_config({})
    endpoints = [endpoint_for_runner(cfg, i, False) for i in range(5)]  # 0 = local runner, 1..4 remote
    endpoints.append(endpoint_for_runner(cfg, 0, True))
    endpoints.append(endpoint_for_runner(cfg, 1, True))
    ports = [p for e in endpoints for p in e.ports]
    assert len(ports) == len(set(ports)) == 21
    assert all(e.streaming_port == e.rpc_port + 1 for e in endpoints)


def test_ports_are_distinct_per_sub_env_when_runners_hold_several_envs():
    cfg = validate_carla_config({"envs_per_runner": 2})
    ports = [p for i in range(5) for v in range(2) for p in endpoint_for_runner(cfg, i, False, v).ports]
    assert len(ports) == len(set(ports))
    with pytest.raises(ConfigError, match="envs_per_runner"):
        endpoint_for_runner(cfg, 1, False, 2)


def test_attach_endpoints_hand_one_server_to_each_runner():
    cfg = validate_carla_config({"avoid_server_init": True, "endpoints": ["a:2000", "b:2000", "c:3000"],
                                 "evaluation_endpoints": ["e:4000", "f:4000"]})
    assert [(e.host, e.rpc_port) for e in (endpoint_for_runner(cfg, i, False) for i in range(3))] == \
        [("a", 2000), ("b", 2000), ("c", 3000)]
    assert endpoint_for_runner(cfg, 1, True).host == "f"
    with pytest.raises(ConfigError, match="lists 3 servers"):
        endpoint_for_runner(cfg, 3, False)


@pytest.mark.parametrize("bad, message", [
    ({"prot": 2000}, "did you mean 'port'"),
    ({"camera": {"widht": 10}}, "env_config.carla.camera.*did you mean 'width_px'"),
    ({"weather": "ClearNon"}, "did you mean 'ClearNoon'"),
    ({"fixed_delta_seconds": 0.5}, r"\(0, 0.1\]"),
    ({"endpoints": ["nohostport"]}, "host:port"),
    ({"port": "2000"}, "port must be a whole number in 1..65535, got '2000'"),
    ({"route": {"loop": "sideways"}}, "straight, left, right"),
    ({"quality_level": "low"}, "did you mean 'Low'"),
])
def test_bad_config_is_a_one_line_error(bad, message):
    with pytest.raises(ConfigError, match=message) as info:
        validate_carla_config(bad)
    assert "\n" not in str(info.value)


def test_defaults_validate_and_fault_tolerance_settings_enable_runner_restarts():
    cfg = validate_carla_config({})
    assert cfg == {**DEFAULT_CARLA_CONFIG, **cfg} and cfg["image"] == "carlasim/carla:0.9.16"
    assert rllib_fault_tolerance_settings()["restart_failed_env_runners"] is True


def test_camera_env_on_carla_renders_the_observation_size():
    # The shipped camera config observes 64x48; the CARLA sensor must render that, not its 160x120 default.
    from control.env.racing_env import RacingEnv

    fc._start_server(port=2000)
    env = RacingEnv({"simulator": "carla", "observation": {"type": "camera", "width_px": 32, "height_px": 24},
                     "carla": {"_fake_module": "tests.fake_carla", "avoid_server_init": True, "timeout_s": 1.0}})
    try:
        obs, _ = env.reset(seed=0)
        assert obs.shape == env.observation_space.shape == (24, 32, 1)
        obs, *_ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_camera_observation_with_carla_camera_off_is_a_config_error():
    from control.env.config import validate_env_config

    for carla in ({"camera": {"enabled": False}}, {"no_rendering": True}):
        with pytest.raises(ConfigError, match="needs CARLA camera frames") as info:
            validate_env_config({"simulator": "carla", "observation": {"type": "camera"}, "carla": carla})
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------ no server before the first reset
def carla_env_config(**carla):
    return {"simulator": "carla", "observation": {"type": "vlidar"},
            "carla": {"_fake_module": "tests.fake_carla", "avoid_server_init": False, "gpu": None, "timeout_s": 1.0,
                      "startup_timeout_s": 15.0, "port": free_base_port(), **carla}}


def test_building_a_carla_env_launches_nothing_until_the_first_reset(monkeypatch):
    from control.env.racing_env import RacingEnv

    docker = FakeDockerClient(fake_carla=fc)
    monkeypatch.setattr(server_mod, "docker_client_from_env", lambda: docker)
    env = RacingEnv(carla_env_config())  # track_source: route, the default: the track comes from the map
    try:
        assert docker.containers.run_calls == [] and fc._SERVERS == {}  # no container, no client connection
        env.reset(seed=0)
        assert len(docker.containers.run_calls) == 1
        assert env.track.name == "carla-Town04"  # the route built from the map on that first reset
        assert env.track.on_track(np.array([[env.vehicle.x_m, env.vehicle.y_m]]))[0]
        env.step(env.action_space.sample())
        env.reset()
        assert len(docker.containers.run_calls) == 1  # one server per env, launched once
    finally:
        env.close()
    assert docker.containers.list(all=True) == []


@pytest.fixture(scope="module")
def real_docker():
    client, image = real_docker_or_skip()
    yield client, image
    remove_labelled(client)
    client.close()


def test_real_daemon_building_a_carla_env_starts_no_container(real_docker):
    from control.env.racing_env import RacingEnv

    client, image = real_docker
    run = "pytest-standin"

    def containers() -> list:
        return client.containers.list(all=True, filters={"label": [f"{LABEL_RUN}={run}"]})

    env = RacingEnv(carla_env_config(image=image, run_name=run))
    try:
        assert containers() == []
        env.reset(seed=0)
        (container,) = containers()
        assert container.status == "running"
    finally:
        env.close()
    assert containers() == []


def test_real_daemon_going_away_mid_run_is_bounded_restarts_then_one_line(real_docker):
    # The backend's Docker client reaches the real daemon through a socket proxy; stopping the proxy takes
    # the daemon away from this client only. The stand-in container answers TCP, the fake carla the RPC.
    from control.carla.server import tcp_probe

    client, image = real_docker
    target = daemon_socket_path()
    if target is None:
        pytest.skip("DOCKER_HOST is not a unix socket: cannot put a proxy in front of it")
    proxy = DockerSocketProxy(target)
    sim = make_sim({"avoid_server_init": False, "image": image, "gpu": None, "port": free_base_port(),
                    "run_name": "pytest-standin", "timeout_s": 0.5, "startup_timeout_s": 15.0,
                    "retries": {"max_restarts": 2, "backoff_s": 0.05}},
                   docker_client=proxy.client(), probe=tcp_probe)
    try:
        sim.reset(start_pose(sim))
        sim.step(0.0, 2.0)
        name = sim.server.container.name
        proxy.stop()
        client.containers.get(sim.server.container.id).kill()  # the server goes down with the daemon
        fc._kill_server(port=sim.endpoint.rpc_port)
        with pytest.raises(SimulatorError):
            sim.step(0.0, 2.0)
        with pytest.raises(CarlaUnavailableError) as info:
            sim.reset(start_pose(sim))
        message = str(info.value)
        assert "\n" not in message
        assert f"unreachable after 2 restart(s) of container {name}" in message and "Docker daemon failed" in message
        sim.close()  # logs the leftover instead of raising
    finally:
        proxy.stop()
        remove_labelled(client)


def test_the_backend_declares_the_limits_the_env_reads():
    from control.sim.base import SingleCarBatch

    sim = make_sim(control_hz=30.0)
    assert sim.limits.control_hz == 30.0 == sim.control_hz  # the rate it ticks at is the rate it declares
    assert SingleCarBatch(sim).limits is sim.limits  # what the env (a batch of one) reads
    assert make_sim().limits == backend_mod.CARLA_LIMITS and backend_mod.CARLA_LIMITS.control_hz == 15.0
