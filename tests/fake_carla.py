"""A faithful in-process fake of the `carla` 0.9.16 client module, for tests (test-only).

Only names that exist in the real `carla` package are public here (tests/test_carla_contract.py
checks every class, method and attribute against the installed module). The world is a
circular one-lane road (radius ROAD_RADIUS_M around the origin, lane LANE_WIDTH_M wide) with
walls LANE_WIDTH_M/2 + WALL_MARGIN_M from the lane centre. Servers live in a registry keyed by
(host, port); tests start, kill and restart them. Like the real client, a call to a dead server
raises RuntimeError("time-out of ...ms while waiting for the simulator ..."), sensor data arrives
on another thread after `tick()` returns, and spawned actors stay in the world until destroyed.
"""
from __future__ import annotations

import math
import queue
import random
import threading
import types
from typing import Any, Callable

ROAD_RADIUS_M = 30.0
LANE_WIDTH_M = 4.0
WALL_MARGIN_M = 1.5
WHEELBASE_M = 2.9
MAX_STEER_DEG = 70.0
MAP_NAME = "Carla/Maps/Town04"
AVAILABLE_MAPS = ["/Game/Carla/Maps/Town01", "/Game/Carla/Maps/Town04", "/Game/Carla/Maps/Town06"]

# Module-level knobs tests change: start a server on first connect (attach tests), die after N ticks,
# and bring a dead server back when a client next connects (a supervisor restarting it).
AUTOSTART = True
DEFAULT_DIE_AFTER_TICKS: int | None = None
REVIVE_DEAD = False

_SERVERS: dict[tuple[str, int], "_Server"] = {}
_LOCK = threading.RLock()


# ---------------------------------------------------------------- test controls (underscore: not carla API)
class _Server:
    """The state of one fake CARLA server process."""

    def __init__(self, host: str, port: int, die_after_ticks: int | None):
        self.host, self.port = host, port
        self.alive = True
        self.generation = 0
        self.die_after_ticks = die_after_ticks
        self.total_ticks = 0
        self.tick_log: list[int] = []  # every frame id ticked, across generations
        self.traffic_manager_sync: dict[int, bool] = {}
        self._deliveries: queue.Queue = queue.Queue()
        threading.Thread(target=self._deliver_loop, daemon=True).start()
        self.reset_world(MAP_NAME)

    def reset_world(self, map_name: str) -> None:
        self.map_name = map_name
        self.settings = WorldSettings()
        self.frame = 1
        self.actors: dict[int, Actor] = {}
        self.next_id = 100
        self.weather = WeatherParameters()

    def _deliver_loop(self) -> None:
        # Sensor data reaches the client on a separate thread, a little after the tick, as in libcarla.
        while True:
            delay_s, callback, data = self._deliveries.get()
            threading.Event().wait(delay_s)
            try:
                callback(data)
            except Exception:  # noqa: BLE001 - a real sensor thread also swallows callback errors
                pass

    def deliver(self, callback: Callable, data: Any) -> None:
        self._deliveries.put((random.uniform(0.0, 0.003), callback, data))


def _start_server(host: str = "127.0.0.1", port: int = 2000, die_after_ticks: int | None = None) -> _Server:
    """Start (or restart) the fake server on host:port and return it."""
    with _LOCK:
        old = _SERVERS.get((host, port))
        server = _Server(host, port, die_after_ticks if die_after_ticks is not None else DEFAULT_DIE_AFTER_TICKS)
        if old is not None:
            server.generation = old.generation + 1
            server.tick_log = old.tick_log
        _SERVERS[(host, port)] = server
        return server


def _kill_server(host: str = "127.0.0.1", port: int = 2000) -> None:
    """Make the server at host:port stop answering (as if its process died)."""
    with _LOCK:
        if (host, port) in _SERVERS:
            _SERVERS[(host, port)].alive = False


def _get_server(host: str = "127.0.0.1", port: int = 2000) -> _Server | None:
    """The server on host:port, or None."""
    return _SERVERS.get((host, port))


def _configure(die_after_ticks: int | None = None, revive_dead: bool = False) -> None:
    """Test hook (CarlaSimulator's `_fake_options`): the first server dies after N ticks; dead ones revive."""
    global DEFAULT_DIE_AFTER_TICKS, REVIVE_DEAD
    DEFAULT_DIE_AFTER_TICKS, REVIVE_DEAD = die_after_ticks, revive_dead


def _reset_all() -> None:
    """Forget every server (between tests)."""
    global AUTOSTART, DEFAULT_DIE_AFTER_TICKS, REVIVE_DEAD
    with _LOCK:
        for server in _SERVERS.values():
            server.alive = False
        _SERVERS.clear()
    AUTOSTART, DEFAULT_DIE_AFTER_TICKS, REVIVE_DEAD = True, None, False


def _timeout_error(host: str, port: int, timeout_s: float) -> RuntimeError:
    return RuntimeError(f"time-out of {int(timeout_s * 1000)}ms while waiting for the simulator, make sure the "
                        f"simulator is ready and connected to {host}:{port}")



# ---------------------------------------------------------------- contract recording (test-only)
_RECORDING: set[tuple[str, str]] | None = None  # (real carla class path, attribute) accessed while recording


class _Recorded:
    """Base of every fake carla class: records public attribute accesses for the contract test."""

    _carla_path = ""  # the class's path in the real module, e.g. "Vehicle" or "command.DestroyActor"

    def __getattribute__(self, name: str) -> Any:
        if _RECORDING is not None and not name.startswith("_"):
            cls = type(self)
            _RECORDING.add((cls.__dict__.get("_carla_path") or cls.__name__, name))
        return object.__getattribute__(self, name)


# ---------------------------------------------------------------- geometry
class Vector3D(_Recorded):
    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0):
        self.x, self.y, self.z = float(x), float(y), float(z)

    def length(self) -> float:
        return math.sqrt(self.x ** 2 + self.y ** 2 + self.z ** 2)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(x={self.x:.3f}, y={self.y:.3f}, z={self.z:.3f})"


class Location(Vector3D):
    def distance(self, other: "Location") -> float:
        return math.sqrt((self.x - other.x) ** 2 + (self.y - other.y) ** 2 + (self.z - other.z) ** 2)


class Rotation(_Recorded):
    def __init__(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0):
        self.pitch, self.yaw, self.roll = float(pitch), float(yaw), float(roll)

    def get_forward_vector(self) -> Vector3D:
        yaw, pitch = math.radians(self.yaw), math.radians(self.pitch)
        return Vector3D(math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch))


class Transform(_Recorded):
    def __init__(self, location: Location | None = None, rotation: Rotation | None = None):
        self.location = location if location is not None else Location()
        self.rotation = rotation if rotation is not None else Rotation()

    def get_forward_vector(self) -> Vector3D:
        return self.rotation.get_forward_vector()


class BoundingBox(_Recorded):
    def __init__(self, location: Location | None = None, extent: Vector3D | None = None):
        self.location = location if location is not None else Location()
        self.extent = extent if extent is not None else Vector3D()


# ---------------------------------------------------------------- settings, weather, control
class WorldSettings(_Recorded):
    def __init__(self, synchronous_mode: bool = False, no_rendering_mode: bool = False,
                 fixed_delta_seconds: float | None = None, substepping: bool = True,
                 max_substep_delta_time: float = 0.01, max_substeps: int = 10):
        self.synchronous_mode = synchronous_mode
        self.no_rendering_mode = no_rendering_mode
        self.fixed_delta_seconds = fixed_delta_seconds
        self.substepping = substepping
        self.max_substep_delta_time = max_substep_delta_time
        self.max_substeps = max_substeps

    def _copy(self) -> "WorldSettings":
        return WorldSettings(self.synchronous_mode, self.no_rendering_mode, self.fixed_delta_seconds,
                             self.substepping, self.max_substep_delta_time, self.max_substeps)


class WeatherParameters(_Recorded):
    def __init__(self, cloudiness: float = 0.0, precipitation: float = 0.0, sun_altitude_angle: float = 45.0):
        self.cloudiness, self.precipitation, self.sun_altitude_angle = cloudiness, precipitation, sun_altitude_angle


for _name, _cloud in (("Default", 0.0), ("ClearNoon", 5.0), ("CloudyNoon", 60.0), ("WetNoon", 5.0),
                      ("WetCloudyNoon", 60.0), ("SoftRainNoon", 20.0), ("MidRainyNoon", 60.0),
                      ("HardRainNoon", 100.0), ("ClearSunset", 5.0), ("CloudySunset", 60.0), ("WetSunset", 5.0),
                      ("WetCloudySunset", 60.0), ("SoftRainSunset", 20.0), ("MidRainSunset", 60.0),
                      ("HardRainSunset", 100.0), ("ClearNight", 5.0), ("CloudyNight", 60.0), ("WetNight", 5.0),
                      ("WetCloudyNight", 60.0), ("SoftRainNight", 20.0), ("MidRainyNight", 60.0),
                      ("HardRainNight", 100.0), ("DustStorm", 100.0)):
    setattr(WeatherParameters, _name, WeatherParameters(cloudiness=_cloud))


class VehicleControl(_Recorded):
    def __init__(self, throttle: float = 0.0, steer: float = 0.0, brake: float = 0.0, hand_brake: bool = False,
                 reverse: bool = False, manual_gear_shift: bool = False, gear: int = 0):
        self.throttle, self.steer, self.brake = float(throttle), float(steer), float(brake)
        self.hand_brake, self.reverse, self.manual_gear_shift, self.gear = hand_brake, reverse, manual_gear_shift, gear


class WheelPhysicsControl(_Recorded):
    def __init__(self, max_steer_angle: float = 0.0):
        self.max_steer_angle = max_steer_angle


class VehiclePhysicsControl(_Recorded):
    def __init__(self, wheels: list[WheelPhysicsControl] | None = None):
        self.wheels = wheels or []


class AttachmentType(_Recorded):
    Rigid = "Rigid"
    SpringArm = "SpringArm"


# ---------------------------------------------------------------- sensor data
class SensorData(_Recorded):
    def __init__(self, frame: int, timestamp: float, transform: Transform):
        self.frame, self.timestamp, self.transform = frame, timestamp, transform


class Image(SensorData):
    def __init__(self, frame: int, timestamp: float, transform: Transform, width: int, height: int, fov: float):
        super().__init__(frame, timestamp, transform)
        self.width, self.height, self.fov = width, height, fov
        # BGRA: blue = frame % 256, green = frame // 256 % 256, red = 7, so a test can tell frames apart.
        pixel = bytes([frame % 256, (frame // 256) % 256, 7, 255])
        self.raw_data = pixel * (width * height)


class CollisionEvent(SensorData):
    def __init__(self, frame: int, timestamp: float, transform: Transform, actor: "Actor", other_actor: Any):
        super().__init__(frame, timestamp, transform)
        self.actor, self.other_actor = actor, other_actor
        self.normal_impulse = Vector3D(1000.0, 0.0, 0.0)


class LaneInvasionEvent(SensorData):
    def __init__(self, frame: int, timestamp: float, transform: Transform, actor: "Actor"):
        super().__init__(frame, timestamp, transform)
        self.actor = actor
        self.crossed_lane_markings: list = []


# ---------------------------------------------------------------- blueprints
class ActorBlueprint(_Recorded):
    def __init__(self, blueprint_id: str, attributes: dict[str, str]):
        self.id = blueprint_id
        self._attributes = dict(attributes)
        self.tags = blueprint_id.split(".")

    def has_attribute(self, id: str) -> bool:  # noqa: A002 - the real keyword is `id`
        return id in self._attributes

    def set_attribute(self, id: str, value: str) -> None:  # noqa: A002
        if id not in self._attributes:
            raise IndexError(f"blueprint {self.id} has no attribute {id!r}")
        if not isinstance(value, str):
            raise TypeError("set_attribute takes a str value")  # as Boost.Python rejects non-str
        self._attributes[id] = value


class BlueprintLibrary(_Recorded):
    def __init__(self, blueprints: list[ActorBlueprint]):
        self._blueprints = list(blueprints)

    def filter(self, wildcard_pattern: str) -> "BlueprintLibrary":
        import fnmatch

        return BlueprintLibrary([b for b in self._blueprints if fnmatch.fnmatch(b.id, wildcard_pattern)])

    def find(self, id: str) -> ActorBlueprint:  # noqa: A002
        for blueprint in self._blueprints:
            if blueprint.id == id:
                return ActorBlueprint(blueprint.id, blueprint._attributes)
        raise IndexError(f"blueprint {id!r} not found")

    def __iter__(self):
        return iter([ActorBlueprint(b.id, b._attributes) for b in self._blueprints])

    def __len__(self) -> int:
        return len(self._blueprints)

    def __getitem__(self, index: int) -> ActorBlueprint:
        b = self._blueprints[index]
        return ActorBlueprint(b.id, b._attributes)


# Bounding-box half extents (x, y, z) per blueprint, m; every other actor gets a car's.
CAR_EXTENT_M = (2.4, 0.95, 0.75)
PROP_EXTENTS_M = {"static.prop.box01": (0.35, 0.35, 0.35), "static.prop.creasedbox01": (0.3, 0.25, 0.15)}


def _library() -> BlueprintLibrary:
    vehicle = {"role_name": "autopilot", "color": "0,0,0"}
    prop = {"role_name": "prop", "size": "small"}
    return BlueprintLibrary([
        ActorBlueprint("vehicle.tesla.model3", vehicle),
        ActorBlueprint("vehicle.audi.tt", vehicle),
        ActorBlueprint("static.prop.box01", prop),
        ActorBlueprint("static.prop.creasedbox01", prop),
        ActorBlueprint("sensor.camera.rgb", {"image_size_x": "800", "image_size_y": "600", "fov": "90",
                                             "sensor_tick": "0.0", "role_name": "front"}),
        ActorBlueprint("sensor.other.collision", {"role_name": "front"}),
        ActorBlueprint("sensor.other.lane_invasion", {"role_name": "front"}),
    ])


# ---------------------------------------------------------------- actors
class _Handle(_Recorded):
    """Common plumbing: every call checks that the server is alive and still the same process."""

    def __init__(self, server: _Server, timeout_s: float):
        self._server_ref, self._generation, self._timeout_s = server, server.generation, timeout_s

    def _live(self) -> _Server:
        server = self._server_ref
        current = _SERVERS.get((server.host, server.port))
        if not server.alive or current is not server or server.generation != self._generation:
            raise _timeout_error(server.host, server.port, self._timeout_s)
        return server


class Actor(_Handle):
    def __init__(self, server: _Server, timeout_s: float, actor_id: int, blueprint: ActorBlueprint,
                 transform: Transform, parent: "Actor | None"):
        super().__init__(server, timeout_s)
        self.id, self.type_id, self.parent = actor_id, blueprint.id, parent
        self.attributes = dict(blueprint._attributes)
        self._transform = transform
        self._speed_mps = 0.0
        self._alive = True
        self._simulate_physics = True
        extent = PROP_EXTENTS_M.get(blueprint.id, CAR_EXTENT_M)
        self.bounding_box = BoundingBox(Location(0.0, 0.0, extent[2]), Vector3D(*extent))

    @property
    def is_alive(self) -> bool:
        server = self._server_ref
        return self._alive and server.alive and server.actors.get(self.id) is self

    def destroy(self) -> bool:
        server = self._live()
        self._alive = False
        return server.actors.pop(self.id, None) is not None

    def get_transform(self) -> Transform:
        self._live()
        t = self._transform
        if self.parent is not None:  # attached: follow the parent (fake ignores the relative offset)
            t = self.parent._transform
        return Transform(Location(t.location.x, t.location.y, t.location.z),
                         Rotation(t.rotation.pitch, t.rotation.yaw, t.rotation.roll))

    def get_location(self) -> Location:
        return self.get_transform().location

    def get_velocity(self) -> Vector3D:
        self._live()
        forward = self._transform.get_forward_vector()
        return Vector3D(forward.x * self._speed_mps, forward.y * self._speed_mps, 0.0)

    def set_target_velocity(self, velocity: Vector3D) -> None:
        self._live()
        self._speed_mps = math.hypot(velocity.x, velocity.y)

    def set_transform(self, transform: Transform) -> None:
        self._live()
        self._transform = transform

    def set_simulate_physics(self, enabled: bool = True) -> None:
        self._live()
        self._simulate_physics = bool(enabled)

    def _footprint(self) -> list[tuple[float, float]]:
        """The bounding box's four ground corners in world (x, y)."""
        t, e = self._transform, self.bounding_box.extent
        c, s = math.cos(math.radians(t.rotation.yaw)), math.sin(math.radians(t.rotation.yaw))
        return [(t.location.x + c * dx - s * dy, t.location.y + s * dx + c * dy)
                for dx, dy in ((e.x, e.y), (e.x, -e.y), (-e.x, -e.y), (-e.x, e.y))]


class Vehicle(Actor):
    def __init__(self, *args: Any):
        super().__init__(*args)
        self._control = VehicleControl()
        self._autopilot = False

    def apply_control(self, control: VehicleControl) -> None:
        self._live()
        self._control = VehicleControl(control.throttle, control.steer, control.brake, control.hand_brake,
                                       control.reverse, control.manual_gear_shift, control.gear)

    def get_control(self) -> VehicleControl:
        self._live()
        c = self._control
        return VehicleControl(c.throttle, c.steer, c.brake, c.hand_brake, c.reverse, c.manual_gear_shift, c.gear)

    def get_physics_control(self) -> VehiclePhysicsControl:
        self._live()
        wheels = [WheelPhysicsControl(MAX_STEER_DEG), WheelPhysicsControl(MAX_STEER_DEG),
                  WheelPhysicsControl(0.0), WheelPhysicsControl(0.0)]
        return VehiclePhysicsControl(wheels)

    def set_autopilot(self, enabled: bool = True, port: int = 8000) -> None:
        self._live()
        self._autopilot = enabled

    def _advance(self, dt_s: float) -> None:
        if not self._simulate_physics:  # kinematic: only set_transform moves it
            return
        c = self._control
        if self._autopilot:  # the Traffic Manager keeps the car in its lane at 8 m/s
            c = VehicleControl(throttle=0.5, steer=_lane_keeping_steer(self._transform))
            self._speed_mps = 8.0
        accel = 6.0 * c.throttle - 9.0 * c.brake - 0.05 * self._speed_mps
        self._speed_mps = max(0.0, self._speed_mps + accel * dt_s)
        t = self._transform
        steer_rad = math.radians(MAX_STEER_DEG) * max(-1.0, min(1.0, c.steer))
        # Left-handed world (x forward, y right): positive steer turns right = yaw grows.
        yaw_rad = math.radians(t.rotation.yaw) + self._speed_mps / WHEELBASE_M * math.tan(steer_rad) * dt_s
        t.rotation.yaw = math.degrees(yaw_rad)
        t.location.x += self._speed_mps * math.cos(yaw_rad) * dt_s
        t.location.y += self._speed_mps * math.sin(yaw_rad) * dt_s


def _footprints_overlap(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> bool:
    """Separating-axis test of two convex quadrilaterals."""
    for poly in (a, b):
        for k in range(4):
            (x0, y0), (x1, y1) = poly[k], poly[(k + 1) % 4]
            nx, ny = y0 - y1, x1 - x0
            pa = [nx * x + ny * y for x, y in a]
            pb = [nx * x + ny * y for x, y in b]
            if max(pa) < min(pb) or max(pb) < min(pa):
                return False
    return True


def _lane_keeping_steer(transform: Transform) -> float:
    theta = math.atan2(transform.location.y, transform.location.x)
    wanted = math.degrees(theta) + 90.0
    error = (wanted - transform.rotation.yaw + 180.0) % 360.0 - 180.0
    return max(-1.0, min(1.0, error / 30.0))


class Sensor(Actor):
    def __init__(self, *args: Any):
        super().__init__(*args)
        self._callback: Callable | None = None
        self._was_outside = False

    @property
    def is_listening(self) -> bool:
        return self._callback is not None

    def listen(self, callback: Callable) -> None:
        self._live()
        self._callback = callback

    def stop(self) -> None:
        self._live()
        self._callback = None

    def _produce(self, server: _Server, timestamp: float) -> None:
        callback, parent, frame = self._callback, self.parent, server.frame
        if callback is None or parent is None:
            return
        transform = parent.get_transform()
        radius = math.hypot(transform.location.x, transform.location.y)
        off_lane_m = abs(radius - ROAD_RADIUS_M) - LANE_WIDTH_M / 2
        if self.type_id == "sensor.camera.rgb":
            if not server.settings.no_rendering_mode:
                a = self.attributes
                server.deliver(callback, Image(frame, timestamp, transform, int(a["image_size_x"]),
                                               int(a["image_size_y"]), float(a["fov"])))
        elif self.type_id == "sensor.other.collision":
            if off_lane_m > WALL_MARGIN_M:
                server.deliver(callback, CollisionEvent(frame, timestamp, transform, parent, None))
            mine = parent._footprint()
            for other in list(server.actors.values()):  # bodies touching the car's (a prop, another vehicle)
                if other is not parent and not isinstance(other, Sensor) and _footprints_overlap(mine, other._footprint()):
                    server.deliver(callback, CollisionEvent(frame, timestamp, transform, parent, other))
        elif self.type_id == "sensor.other.lane_invasion":
            outside = off_lane_m > 0
            if outside != self._was_outside:
                server.deliver(callback, LaneInvasionEvent(frame, timestamp, transform, parent))
            self._was_outside = outside


class ActorList(_Recorded, list):
    def filter(self, wildcard_pattern: str) -> "ActorList":
        import fnmatch

        return ActorList(a for a in self if fnmatch.fnmatch(a.type_id, wildcard_pattern))

    def find(self, actor_id: int) -> Actor | None:
        return next((a for a in self if a.id == actor_id), None)


# ---------------------------------------------------------------- map
class Waypoint(_Recorded):
    def __init__(self, theta_rad: float, lane_width: float = LANE_WIDTH_M):
        self._theta = theta_rad % (2 * math.pi)
        self.lane_width = lane_width
        self.road_id, self.section_id, self.lane_id = 1, 0, -1
        self.s = self._theta * ROAD_RADIUS_M
        self.is_junction = False
        self.id = int(self.s * 1000)
        x, y = ROAD_RADIUS_M * math.cos(self._theta), ROAD_RADIUS_M * math.sin(self._theta)
        self.transform = Transform(Location(x, y, 0.0), Rotation(yaw=math.degrees(self._theta) + 90.0))

    def next(self, distance: float) -> list["Waypoint"]:
        return [Waypoint(self._theta + distance / ROAD_RADIUS_M)]

    def previous(self, distance: float) -> list["Waypoint"]:
        return [Waypoint(self._theta - distance / ROAD_RADIUS_M)]


class Map(_Recorded):
    def __init__(self, name: str):
        self.name = name

    def get_spawn_points(self) -> list[Transform]:
        return [Waypoint(2 * math.pi * k / 12).transform for k in range(12)]

    def get_waypoint(self, location: Location, project_to_road: bool = True, lane_type: Any = None) -> Waypoint:
        return Waypoint(math.atan2(location.y, location.x))

    def generate_waypoints(self, distance: float) -> list[Waypoint]:
        n = max(1, int(2 * math.pi * ROAD_RADIUS_M / distance))
        return [Waypoint(2 * math.pi * k / n) for k in range(n)]


# ---------------------------------------------------------------- traffic manager
class TrafficManager(_Handle):
    def __init__(self, server: _Server, timeout_s: float, port: int):
        super().__init__(server, timeout_s)
        self._port = port

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        self._live().traffic_manager_sync[self._port] = mode_switch

    def get_port(self) -> int:
        return self._port


# ---------------------------------------------------------------- world and client
class World(_Handle):
    def get_settings(self) -> WorldSettings:
        return self._live().settings._copy()

    def apply_settings(self, world_settings: WorldSettings) -> int:
        server = self._live()
        server.settings = world_settings._copy()
        return server.frame

    def get_map(self) -> Map:
        return Map(self._live().map_name)

    def get_blueprint_library(self) -> BlueprintLibrary:
        self._live()
        return _library()

    def set_weather(self, weather: WeatherParameters) -> None:
        self._live().weather = weather

    def get_weather(self) -> WeatherParameters:
        return self._live().weather

    def get_actors(self, actor_ids: list[int] | None = None) -> ActorList:
        server = self._live()
        actors = list(server.actors.values())
        if actor_ids is not None:
            actors = [a for a in actors if a.id in actor_ids]
        return ActorList(actors)

    def spawn_actor(self, blueprint: ActorBlueprint, transform: Transform, attach_to: Actor | None = None,
                    attachment_type: Any = AttachmentType.Rigid) -> Actor:
        actor = self.try_spawn_actor(blueprint, transform, attach_to, attachment_type)
        if actor is None:
            raise RuntimeError("Spawn failed because of collision at spawn position")
        return actor

    def try_spawn_actor(self, blueprint: ActorBlueprint, transform: Transform, attach_to: Actor | None = None,
                        attachment_type: Any = AttachmentType.Rigid) -> Actor | None:
        server = self._live()
        if blueprint.id.startswith("vehicle."):
            for other in server.actors.values():
                if isinstance(other, Vehicle) and other._transform.location.distance(transform.location) < 3.0:
                    return None
            cls = Vehicle
        else:
            cls = Sensor if blueprint.id.startswith("sensor.") else Actor
        server.next_id += 1
        copy = Transform(Location(transform.location.x, transform.location.y, transform.location.z),
                         Rotation(transform.rotation.pitch, transform.rotation.yaw, transform.rotation.roll))
        actor = cls(server, self._timeout_s, server.next_id, blueprint, copy, attach_to)
        server.actors[actor.id] = actor
        return actor

    def tick(self, seconds: float = 10.0) -> int:
        server = self._live()
        if server.die_after_ticks is not None and server.total_ticks >= server.die_after_ticks:
            server.alive = False  # the process dies mid-episode: this tick never returns
            raise _timeout_error(server.host, server.port, seconds)
        dt_s = server.settings.fixed_delta_seconds or 0.05
        server.frame += 1
        server.total_ticks += 1
        server.tick_log.append(server.frame)
        timestamp = server.frame * dt_s
        for actor in list(server.actors.values()):
            if isinstance(actor, Vehicle):
                actor._advance(dt_s)
        for actor in list(server.actors.values()):
            if isinstance(actor, Sensor):
                actor._produce(server, timestamp)
        return server.frame


class Client(_Recorded):
    def __init__(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0):
        self._host, self._port, self._timeout_s = host, int(port), 5.0

    def _server(self) -> _Server:
        with _LOCK:
            server = _SERVERS.get((self._host, self._port))
            if server is None and AUTOSTART:
                server = _start_server(self._host, self._port)
            elif server is not None and not server.alive and REVIVE_DEAD:
                server = _start_server(self._host, self._port)
                server.die_after_ticks = None  # it died once; the revived one keeps running
        if server is None or not server.alive:
            raise _timeout_error(self._host, self._port, self._timeout_s)
        return server

    def set_timeout(self, seconds: float) -> None:
        self._timeout_s = float(seconds)

    def get_server_version(self) -> str:
        self._server()
        return "0.9.16"

    def get_client_version(self) -> str:
        return "0.9.16"

    def get_world(self) -> World:
        return World(self._server(), self._timeout_s)

    def get_available_maps(self) -> list[str]:
        self._server()
        return list(AVAILABLE_MAPS)

    def load_world(self, map_name: str, reset_settings: bool = True, map_layers: Any = None) -> World:
        server = self._server()
        matches = [m for m in AVAILABLE_MAPS if m.split("/")[-1] == map_name.split("/")[-1]]
        if not matches:
            raise RuntimeError(f"map '{map_name}' not found")
        settings = server.settings
        server.reset_world("Carla/Maps/" + map_name.split("/")[-1])
        if not reset_settings:
            server.settings = settings
        return World(server, self._timeout_s)

    def generate_opendrive_world(self, opendrive: str, parameters: Any = None, reset_settings: bool = True) -> World:
        server = self._server()
        if "<OpenDRIVE" not in opendrive:
            raise RuntimeError("failed to parse OpenDRIVE")
        server.reset_world("OpenDriveMap")
        return World(server, self._timeout_s)

    def get_trafficmanager(self, client_connection: int = 8000) -> TrafficManager:
        return TrafficManager(self._server(), self._timeout_s, client_connection)

    def apply_batch_sync(self, commands: list, due_tick_cue: bool = False) -> list["command.Response"]:
        server = self._server()
        responses = []
        for cmd in commands:
            if isinstance(cmd, command.ApplyTransform):
                actor = server.actors.get(cmd.actor_id)
                if actor is not None:
                    actor._transform = cmd.transform
            else:
                actor = server.actors.pop(cmd.actor_id, None)
                if actor is not None:
                    actor._alive = False
            responses.append(command.Response(cmd.actor_id, "" if actor is not None else "actor not found"))
        return responses


class _Command:
    class DestroyActor(_Recorded):
        _carla_path = "command.DestroyActor"

        def __init__(self, actor: Any):
            self.actor_id = actor if isinstance(actor, int) else actor.id

    class ApplyTransform(_Recorded):
        _carla_path = "command.ApplyTransform"

        def __init__(self, actor: Any, transform: Transform):
            self.actor_id = actor if isinstance(actor, int) else actor.id
            self.transform = transform

    class Response(_Recorded):
        _carla_path = "command.Response"

        def __init__(self, actor_id: int, error: str):
            self.actor_id, self.error = actor_id, error

        def has_error(self) -> bool:
            return bool(self.error)


command = types.ModuleType("carla.command")
command.DestroyActor = _Command.DestroyActor
command.Response = _Command.Response
command.ApplyTransform = _Command.ApplyTransform
command.ApplyTransform.__qualname__ = "ApplyTransform"
command.DestroyActor.__qualname__ = "DestroyActor"
command.Response.__qualname__ = "Response"
