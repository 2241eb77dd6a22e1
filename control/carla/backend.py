"""The CARLA simulator backend: one ego vehicle in a synchronous CARLA world.

Coordinates: CARLA's world is left-handed (x forward, y right, z up; yaw clockwise seen from
above). The env and the Track use a right-handed plane, so everything crossing this boundary is
mirrored: x_rh = x, y_rh = -y, yaw_rh = -yaw. A track file placed on a map is shifted by
`track_offset_m` (its origin in right-handed world coordinates).

Fault handling: a client timeout or a dead server during reset/step raises SimulatorError (the
env ends the episode as truncated); the next reset restarts the container this backend owns
(or waits for an attached server) with bounded retries and exponential backoff, reconnects,
and carries on. Only the actors this backend spawned are ever destroyed. A Docker daemon that
goes away is the same fault: bounded restarts, then CarlaUnavailableError (one line, naming the
server and the last failure). A derived port held by a server we did not start is PortInUseError
(a ConfigError, never retried).

Lazy start (what the env relies on): constructing a CarlaSimulator contacts nothing: no Docker
call, no container, no client connection. The server is launched or attached, the map loaded and
the route track built on the first `reset()`, or earlier by an explicit `ensure_started()`.
The env asks for its track with `load_track(env_track)` at reset, before it picks the start
pose, never in its `__init__`: for `track_source: route` that call starts the server (the
route comes from the map); for `file` it reads the file and for `env` it returns `env_track`,
both without a server. `track` answers without starting anything: the track when it is known,
None for a route that has not been built yet.
"""
from __future__ import annotations

import atexit
import dataclasses
import importlib
import logging
import math
import queue
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from control.carla.config import camera_spec, validate_carla_config
from control.carla.race_actors import RaceActors
from control.carla.server import CarlaServerError, carla_probe, server_for_runner
from control.errors import ConfigError, UserError, did_you_mean
from control.sim.base import DEEPRACER_LIMITS, CameraSpec, Pose, SimulatorBackend, SimulatorError, VehicleLimits, VehicleState
from control.track.track import Track

log = logging.getLogger(__name__)

# Wheel contact points as fractions of the bounding-box half length (CARLA cars: wheelbase ≈ 0.6 × length).
_WHEEL_X_FRACTION = 0.62

# The car's limits as this backend declares them (read by the env, never repeated as literals elsewhere).
CONTROL_RATE_HZ = 15.0  # control steps per simulated second (DeepRacer's rate)
DEFAULT_MAX_STEER_DEG = 70.0  # front-wheel angle at steer = 1 when the vehicle physics do not say (CARLA's default)
# What the env reads of this car (speed and steering scales, control rate): the CARLA car is driven in
# DeepRacer's command envelope, so a policy trained on the built-in simulator commands and observes the
# same ranges here. The chassis figures are not read for CARLA: wheel positions come from the vehicle's
# bounding box and the steer scale from its physics (DEFAULT_MAX_STEER_DEG when it says nothing).
CARLA_LIMITS = dataclasses.replace(DEEPRACER_LIMITS, control_hz=CONTROL_RATE_HZ)

_LIVE_SIMULATORS: "weakref.WeakSet[CarlaSimulator]" = weakref.WeakSet()


def _close_all_at_exit() -> None:
    # A process that exits without close() must not leave an attached server in synchronous mode
    # (every other client of that server would freeze).
    for sim in list(_LIVE_SIMULATORS):
        sim.close()


atexit.register(_close_all_at_exit)


class CarlaUnavailableError(SimulatorError, UserError):
    """The CARLA server stayed unreachable after every restart/reconnect try (one line for the CLI)."""


def import_carla(cfg: dict) -> Any:
    """The `carla` module: the real one, or (tests only) the module named by cfg['_fake_module'].

    Test-only hooks, so that a fake can be injected into env runners in other processes:
    `_fake_module` (import path, e.g. "tests.fake_carla") and `_fake_options` (a dict handed to the
    fake's `_configure(**options)`). Users never set them.
    """
    name = cfg.get("_fake_module") or "carla"
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"simulator 'carla' needs the CARLA client: pip install carla==0.9.16 "
                          f"(could not import {name!r})") from None
    if cfg.get("_fake_options"):
        module._configure(**cfg["_fake_options"])
    return module


class _SensorQueue:
    """Sensor data from CARLA's callback thread, handed to the stepping thread by frame number."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()

    def put(self, data: Any) -> None:
        self._queue.put(data)

    def wait_for_frame(self, frame: int, timeout_s: float) -> Any:
        """The data of tick `frame`; older frames are dropped (they belong to earlier ticks)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                data = self._queue.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                raise RuntimeError(f"time-out: no sensor data for frame {frame} within {timeout_s:.1f} s") from None
            if data.frame == frame:
                return data
            if data.frame > frame:  # a later tick's data: the one we want was never sent
                raise RuntimeError(f"sensor skipped frame {frame} (got {data.frame})")

    def clear(self) -> None:
        """Drop everything queued."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return


class _EventLog:
    """Frames of event sensors (collision, lane invasion): they fire only when something happens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frames: list[int] = []

    def put(self, event: Any) -> None:
        with self._lock:
            self._frames.append(int(event.frame))

    def take_since(self, first_frame: int) -> bool:
        """True when an event of frame >= first_frame has arrived since the last call; forgets them all.

        Events reach the client on CARLA's sensor thread, possibly after tick() returned: one that
        arrives late is reported on the next step rather than lost.
        """
        with self._lock:
            hit = any(f >= first_frame for f in self._frames)
            self._frames.clear()
        return hit

    def clear(self) -> None:
        """Forget all events."""
        with self._lock:
            self._frames.clear()


class CarlaSimulator(SimulatorBackend):
    """SimulatorBackend on a CARLA server (launched in Docker or attached), synchronous mode."""

    def __init__(self, carla_config: dict, track: Track | None, *, run_name: str, runner_index: int,
                 is_evaluation: bool, control_hz: float = CONTROL_RATE_HZ, carla_module: Any = None,
                 docker_client: Any = None,
                 vector_index: int = 0, probe: Any = None) -> None:
        self.cfg = validate_carla_config(carla_config)
        self.control_hz = float(control_hz)
        self.limits: VehicleLimits = dataclasses.replace(CARLA_LIMITS, control_hz=self.control_hz)
        self.camera_spec: CameraSpec = camera_spec(self.cfg["camera"])  # what the RGB sensor renders, and where it sits
        self.carla = carla_module if carla_module is not None else import_carla(self.cfg)
        self.server = server_for_runner(self.cfg, run_name=run_name, runner_index=runner_index,
                                        is_evaluation=is_evaluation, vector_index=vector_index,
                                        probe=probe or carla_probe(self.carla), docker_client=docker_client)
        self.endpoint = self.server.endpoint
        period_s = 1.0 / self.control_hz
        self.fixed_delta_s = float(self.cfg["fixed_delta_seconds"] or period_s)
        self.ticks_per_step = max(1, round(period_s / self.fixed_delta_s))
        if abs(self.ticks_per_step * self.fixed_delta_s - period_s) > 1e-3 * period_s:
            raise ConfigError(f"env_config.carla.fixed_delta_seconds ({self.fixed_delta_s}) must divide the control "
                              f"period 1/{self.control_hz:g} s; e.g. {period_s / 2:.5f}")
        self._given_track = track
        self._track: Track | None = None
        self._offset = np.asarray(self.cfg["track_offset_m"], dtype=float)
        self._client: Any = None
        self._world: Any = None
        self._tm: Any = None
        self._original_settings: Any = None
        self._server_started = False
        self._broken_reason: str | None = None
        self._actors: list[Any] = []  # every actor this backend spawned and has not destroyed
        self._sensors: list[Any] = []
        self._vehicle: Any = None
        self._camera = _SensorQueue()
        self._collisions = _EventLog()
        self._lane_invasions = _EventLog()
        self._image: np.ndarray | None = None
        self._pending_image: Any = None
        # env_config.race's boxes/bots as actors (sync_race_objects); destroyed with the car's at every reset.
        self._race = RaceActors(self.carla, self._offset, self.cfg["race_actors"], self.cfg["spawn_z_m"])
        self._orphan_ids: list[int] = []  # our actors on a server we lost contact with: destroyed on reconnect
        self._frame = 0
        self._episode_start_frame = 0
        self._time_s = 0.0
        self._speed_error_integral = 0.0
        self._max_steer_rad = math.radians(self.cfg["max_steer_deg"] or DEFAULT_MAX_STEER_DEG)
        self.restarts = 0  # server restarts/reconnects done (diagnostics)
        _LIVE_SIMULATORS.add(self)

    # ------------------------------------------------------------------ connection
    @property
    def track(self) -> Track | None:
        """The track the car drives when it is known without a server; None for a route not built yet."""
        if self._track is None and not self._track_from_map():
            self._track = self._track_without_server(self._given_track)
        return self._track

    def load_track(self, env_track: Track | None = None) -> Track:
        """The track the car drives; call at reset: a map route starts the server (file/env never do)."""
        if not self._track_from_map():
            if self.cfg["track_source"] == "env" and env_track is not None:
                return env_track  # the env picks which of its tracks to place on the map
            return self.track
        if self._track is None:
            self.ensure_started()
        return self._track

    def ensure_started(self) -> None:
        """Launch or attach, connect, load the map and build the route track; idempotent, bounded restarts."""
        if self._world is not None:
            return
        if self._broken_reason is None:
            try:
                self._guard(self._ensure_connected, "start")
                return
            except SimulatorError:
                pass  # marked broken: restart with the configured retries and backoff
        self._recover()

    def _track_from_map(self) -> bool:
        """True when the track is a route built from the CARLA map (needs a running server)."""
        return self.cfg["track_source"] == "route" or (self.cfg["track_source"] == "env" and self._given_track is None)

    def _track_without_server(self, given: Track | None) -> Track:
        if self.cfg["track_source"] == "file":
            return Track.from_npy(self.cfg["track_file"])
        return given

    def _ensure_connected(self) -> None:
        if self._world is not None:
            return
        if not self._server_started:
            self.server.start()
            self._server_started = True
        self._connect()

    def _connect(self) -> None:
        carla = self.carla
        client = carla.Client(self.endpoint.host, self.endpoint.rpc_port)
        client.set_timeout(self.cfg["timeout_s"])
        world = self._load_map(client)
        if self._original_settings is None:  # a reconnect must not record our own sync settings as "original"
            self._original_settings = world.get_settings()
        settings = world.get_settings()
        settings.synchronous_mode = True
        settings.fixed_delta_seconds = self.fixed_delta_s
        settings.no_rendering_mode = self.cfg["no_rendering"]
        world.apply_settings(settings)
        world.set_weather(getattr(carla.WeatherParameters, self.cfg["weather"]))
        if self.cfg["traffic"]["enabled"]:
            self._tm = client.get_trafficmanager(self.endpoint.tm_port)
            self._tm.set_synchronous_mode(True)
        self._client, self._world = client, world
        if self._track is None:
            self._track = self._build_track(world)
        world.tick()  # apply the settings before the first spawn

    def _load_map(self, client: Any) -> Any:
        wanted = self.cfg["map"]
        if wanted.endswith(".xodr"):
            path = Path(wanted)
            if not path.is_file():
                raise ConfigError(f"env_config.carla.map: OpenDRIVE file {wanted!r} not found")
            return client.generate_opendrive_world(path.read_text())
        world = client.get_world()
        current = world.get_map().name.split("/")[-1]
        if current == wanted.split("/")[-1]:
            return world  # reloading a loaded map costs tens of seconds
        available = [m.split("/")[-1] for m in client.get_available_maps()]
        if wanted.split("/")[-1] not in available:
            raise ConfigError(f"env_config.carla.map: {wanted!r} is not on the server{did_you_mean(wanted, available)}; "
                              f"available: {', '.join(sorted(available))}")
        return client.load_world(wanted)

    def _build_track(self, world: Any) -> Track:
        from control.carla.track_from_map import track_from_route

        if not self._track_from_map():
            return self._track_without_server(self._given_track)
        self._offset = np.zeros(2)  # a map route is already in world coordinates
        track = track_from_route(world.get_map(), self.cfg["route"], self.carla, name=f"carla-{self.cfg['map']}")
        if self.cfg["save_track"]:
            track.to_npy(self.cfg["save_track"])
        return track

    def _guard(self, action: Any, what: str) -> Any:
        """Run a client call; a timeout or server fault marks the connection broken -> SimulatorError."""
        try:
            return action()
        except (RuntimeError, CarlaServerError) as exc:
            if isinstance(exc, SimulatorError):
                raise
            self._mark_broken(f"{what}: {exc}")
            raise SimulatorError(f"CARLA {what} failed on {self.server.describe()}: {exc}") from exc

    def _mark_broken(self, reason: str) -> None:
        log.warning("CARLA connection broken (%s); will restart on the next reset", reason)
        self._broken_reason = reason
        self._orphan_ids += [a.id for a in self._actors] + self._race.forget()  # an attached server may still hold them
        self._client = self._world = self._tm = self._vehicle = None
        self._actors, self._sensors = [], []

    def _recover(self) -> None:
        """Restart (launch mode) or reconnect (attach mode), bounded retries with exponential backoff."""
        retries = self.cfg["retries"]
        last = self._broken_reason
        for attempt in range(retries["max_restarts"]):
            if attempt:
                time.sleep(retries["backoff_s"] * 2 ** (attempt - 1))
            try:
                self.server.restart()
                self._connect()
            except (RuntimeError, CarlaServerError) as exc:
                last = " ".join(str(exc).split())  # the final error stays one line
                self._client = self._world = None
                log.warning("CARLA restart %d/%d failed: %s", attempt + 1, retries["max_restarts"], exc)
                continue
            if self._orphan_ids:
                self._client.apply_batch_sync([self.carla.command.DestroyActor(i) for i in self._orphan_ids], False)
                self._orphan_ids = []
            self.restarts += 1
            self._broken_reason = None
            return
        raise CarlaUnavailableError(
            f"CARLA server unreachable after {retries['max_restarts']} restart(s) of {self.server.describe()} "
            f"(last error: {last}); check the server/container logs, or raise env_config.carla.retries.max_restarts")

    # ------------------------------------------------------------------ actors
    def _destroy_actors(self) -> None:
        """Destroy exactly the actors this backend spawned (sensors stopped first)."""
        for sensor in self._sensors:
            if sensor.is_alive:
                sensor.stop()
        if self._actors:
            commands = [self.carla.command.DestroyActor(a.id) for a in self._actors]
            self._client.apply_batch_sync(commands, False)
        self._actors, self._sensors, self._vehicle = [], [], None
        self._race.destroy(self._client)

    def _world_transform(self, pose: Pose, z_m: float) -> Any:
        carla = self.carla
        x_m, y_m = pose.x_m + self._offset[0], pose.y_m + self._offset[1]
        return carla.Transform(carla.Location(x=x_m, y=-y_m, z=z_m), carla.Rotation(yaw=-math.degrees(pose.yaw_rad)))

    def _spawn(self, pose: Pose, speed_mps: float) -> None:
        carla, world = self.carla, self._world
        library = world.get_blueprint_library()
        matches = library.filter(self.cfg["vehicle_filter"])
        if len(matches) == 0:
            raise ConfigError(f"env_config.carla.vehicle_filter {self.cfg['vehicle_filter']!r} matches no blueprint; "
                              f"e.g. 'vehicle.tesla.model3'")
        blueprint = matches[0]
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", "hero")
        ground = world.get_map().get_waypoint(self._world_transform(pose, 0.0).location)
        ground_z = ground.transform.location.z if ground is not None else 0.0
        transform = self._world_transform(pose, ground_z + self.cfg["spawn_z_m"])
        vehicle = world.try_spawn_actor(blueprint, transform)
        if vehicle is None:
            raise SimulatorError(f"CARLA could not spawn {blueprint.id} at ({pose.x_m:.1f}, {pose.y_m:.1f}) m: "
                                 f"the spot is taken or off the map")
        self._actors.append(vehicle)
        self._vehicle = vehicle
        if self.cfg["max_steer_deg"] is None:
            wheels = vehicle.get_physics_control().wheels
            self._max_steer_rad = math.radians(max(w.max_steer_angle for w in wheels[:2]) or DEFAULT_MAX_STEER_DEG)
        self._attach_sensors(library, vehicle)
        if speed_mps > 0:
            forward = transform.get_forward_vector()
            vehicle.set_target_velocity(carla.Vector3D(forward.x * speed_mps, forward.y * speed_mps, 0.0))
        if self.cfg["traffic"]["enabled"]:
            self._spawn_traffic(library, transform)

    def _attach_sensors(self, library: Any, vehicle: Any) -> None:
        carla, world, cam = self.carla, self._world, self.cfg["camera"]
        self._camera.clear()
        self._collisions.clear()
        self._lane_invasions.clear()
        specs = []
        if cam["enabled"] and not self.cfg["no_rendering"]:
            bp = library.find("sensor.camera.rgb")
            spec = self.camera_spec
            bp.set_attribute("image_size_x", str(spec.width_px))
            bp.set_attribute("image_size_y", str(spec.height_px))
            bp.set_attribute("fov", str(spec.fov_deg))
            # CARLA's pitch is positive up; CameraSpec's pitch_down_deg is positive down.
            mount = carla.Transform(carla.Location(x=spec.x_offset_m, z=spec.height_m), carla.Rotation(pitch=-spec.pitch_down_deg))
            specs.append((bp, mount, self._camera.put))
        specs.append((library.find("sensor.other.collision"), carla.Transform(), self._collisions.put))
        specs.append((library.find("sensor.other.lane_invasion"), carla.Transform(), self._lane_invasions.put))
        for bp, mount, sink in specs:
            sensor = world.spawn_actor(bp, mount, attach_to=vehicle)
            self._actors.append(sensor)
            self._sensors.append(sensor)
            sensor.listen(sink)  # a bound method of a queue: no reference cycle through self

    def _spawn_traffic(self, library: Any, ego: Any) -> None:
        world = self._world
        vehicles = library.filter("vehicle.*")
        points = sorted(world.get_map().get_spawn_points(), key=lambda t: -t.location.distance(ego.location))
        for k, point in enumerate(points[: self.cfg["traffic"]["vehicles"]]):
            other = world.try_spawn_actor(vehicles[k % len(vehicles)], point)
            if other is not None:
                self._actors.append(other)
                other.set_autopilot(True, self.endpoint.tm_port)

    # ------------------------------------------------------------------ stepping
    def _tick(self) -> int:
        frame = self._world.tick(self.cfg["timeout_s"])
        if self._sensors and self.cfg["camera"]["enabled"] and not self.cfg["no_rendering"]:
            image = self._camera.wait_for_frame(frame, self.cfg["timeout_s"])
            self._pending_image = image
        self._frame = frame
        return frame

    def _decode_image(self) -> None:
        image = self._pending_image
        if image is None:
            self._image = None
            return
        bgra = np.frombuffer(image.raw_data, dtype=np.uint8).reshape(image.height, image.width, 4)
        self._image = np.ascontiguousarray(bgra[:, :, 2::-1])  # BGRA -> RGB, a copy CARLA cannot overwrite
        self._pending_image = None

    def _state(self) -> VehicleState:
        vehicle = self._vehicle
        transform = vehicle.get_transform()
        velocity = vehicle.get_velocity()
        control = vehicle.get_control()
        x_m = transform.location.x - self._offset[0]
        y_m = -transform.location.y - self._offset[1]
        yaw_rad = -math.radians(transform.rotation.yaw)
        extent = vehicle.bounding_box.extent
        half_wheelbase_m = _WHEEL_X_FRACTION * extent.x
        local = np.array([[half_wheelbase_m, extent.y], [half_wheelbase_m, -extent.y],
                          [-half_wheelbase_m, extent.y], [-half_wheelbase_m, -extent.y]])
        c, s = math.cos(yaw_rad), math.sin(yaw_rad)
        wheels = local @ np.array([[c, s], [-s, c]]) + np.array([x_m, y_m])
        crashed = self._collisions.take_since(self._episode_start_frame)
        invaded = self._lane_invasions.take_since(self._episode_start_frame)
        return VehicleState(
            x_m=x_m, y_m=y_m, yaw_rad=math.atan2(s, c),
            speed_mps=math.hypot(velocity.x, velocity.y),
            steering_rad=-control.steer * self._max_steer_rad,  # CARLA steer > 0 turns right
            wheel_positions_m=wheels, time_s=self._time_s, is_crashed=crashed, lane_invasion=invaded,
            extra={"frame": self._frame, "server": f"{self.endpoint.host}:{self.endpoint.rpc_port}",
                   "restarts": self.restarts})

    def _speed_control(self, speed_mps: float, target_mps: float) -> tuple[float, float]:
        """PI controller: (throttle, brake) in [0, 1] for a target speed."""
        error = target_mps - speed_mps
        dt_s = 1.0 / self.control_hz
        self._speed_error_integral = float(np.clip(self._speed_error_integral + error * dt_s, -5.0, 5.0))
        u = self.cfg["speed_kp"] * error + self.cfg["speed_ki"] * self._speed_error_integral
        if u >= 0:
            return float(min(u, 1.0)), 0.0
        return 0.0, float(min(-u, 1.0))

    # ------------------------------------------------------------------ SimulatorBackend
    def reset(self, pose: Pose, speed_mps: float = 0.0) -> VehicleState:
        """Destroy the previous episode's actors, spawn the car at `pose`, tick once, return its state."""
        if self._broken_reason is not None:
            self._recover()

        def do_reset() -> VehicleState:
            self._ensure_connected()
            self._destroy_actors()
            self._spawn(pose, speed_mps)
            self._time_s = 0.0
            self._speed_error_integral = 0.0
            # Events of the spawn tick (a bump with the ground) and of the last episode do not count.
            self._episode_start_frame = self._tick() + 1
            self._decode_image()
            return self._state()

        return self._guard(do_reset, "reset")

    def step(self, steering_rad: float, speed_mps: float) -> VehicleState:
        """Apply steering (rad, + = left) and a target speed (m/s) for one control period."""
        if self._vehicle is None:
            raise SimulatorError("CARLA backend: step() before reset() (or after a server fault)")

        def do_step() -> VehicleState:
            velocity = self._vehicle.get_velocity()
            throttle, brake = self._speed_control(math.hypot(velocity.x, velocity.y), speed_mps)
            steer = float(np.clip(-steering_rad / self._max_steer_rad, -1.0, 1.0))
            self._vehicle.apply_control(self.carla.VehicleControl(throttle=throttle, steer=steer, brake=brake))
            for _ in range(self.ticks_per_step):
                self._tick()
            self._time_s += self.ticks_per_step * self.fixed_delta_s
            self._decode_image()
            return self._state()

        return self._guard(do_step, "step")

    def sync_race_objects(self, objects: Any) -> None:
        """env_config.race's objects as this world's actors: spawned when missing (placed poses), bots moved, poses read back."""
        if self._world is None or objects.num_objects == 0:
            return

        def do_sync() -> None:
            self._race.offset_m = self._offset  # a map route sets the offset when the track is built
            if not self._race.actors:  # a new episode (reset destroyed the last one's) or the car put back
                self._race.spawn(self._client, self._world, objects)
            else:
                self._race.follow(self._client, self._world, objects)

        try:
            self._guard(do_sync, "race objects")
        except SimulatorError as exc:
            # Marked broken: the next step reports the fault (the episode ends as sim_error), the next reset recovers.
            log.warning("%s", exc)

    def camera_image(self) -> np.ndarray | None:
        """The RGB frame of the latest tick (H, W, 3) uint8, or None without a camera."""
        return self._image

    def close(self) -> None:
        """Destroy our actors, restore the world settings we changed, stop the server we launched."""
        _LIVE_SIMULATORS.discard(self)
        if self._world is not None:
            try:
                self._destroy_actors()
                if self._tm is not None:
                    self._tm.set_synchronous_mode(False)
                if self._original_settings is not None:
                    self._world.apply_settings(self._original_settings)
            except RuntimeError as exc:  # the server is gone: nothing left to restore
                log.warning("CARLA close: could not restore the world (%s)", exc)
        self._client = self._world = self._tm = self._vehicle = None
        self._actors, self._sensors = [], []
        self.server.close()
        self._server_started = False
