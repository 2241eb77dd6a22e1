"""env_config.race's boxes and bot cars as CARLA actors, mirroring the race core's RaceObjects.

The race core places the objects (RaceObjects: DeepRacer's placement rules, each env's seed) and moves
the bots along their lane's line (lane changes included); this module makes that real in the CARLA
world: a static prop per box, a vehicle per bot, spawned at the placed poses, the bots teleported to
their lane follower's pose every control step (physics off: kinematic, exactly the built-in's path and
speed). The Traffic Manager is not used: it drives the map's lanes with its own routing and lane
changes, takes speeds as a percentage of the road's limit, and draws its own randomness, so neither
the route, nor bot_speed_mps, nor the seeds' lane-change times would hold.

Back from the actors: their transforms (x, y, yaw) and bounding boxes (footprint) overwrite the
objects' poses and footprints, so the object params, the footprint test and the lidar read the actors
as CARLA has them. CARLA's client reports the transform of the last tick, so on a real server a bot's
reported pose is the one it was set to a control step earlier (at most bot_speed_mps / 15 m behind).

Only actors spawned here are touched: each carries role_name `race_box_<j>` / `race_bot_<j>`, is kept
in `actors`, and is destroyed by id (never by a filter over the world's actors).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from control.errors import ConfigError
from control.sim.objects import RaceObjects

ROLE_PREFIX = "race_"


class RaceActors:
    """The CARLA actors of one car's race objects (row 0 of a RaceObjects of one env)."""

    def __init__(self, carla: Any, offset_m: np.ndarray, blueprints: dict, lift_m: float) -> None:
        self.carla = carla
        self.offset_m = np.asarray(offset_m, dtype=float)  # track frame origin in right-handed world coordinates
        self.blueprints = dict(blueprints)
        self.lift_m = float(lift_m)  # a bot spawns this far above the road (as the ego: spawn_z_m)
        self.actors: list[Any] = []
        self._bots = False

    # ------------------------------------------------------------ frames
    def _world_transform(self, world_map: Any, x_m: float, y_m: float, yaw_rad: float, lift_m: float) -> Any:
        """CARLA Transform (left-handed world, on the road surface + lift_m) of a track-frame pose."""
        carla = self.carla
        location = carla.Location(x=x_m + self.offset_m[0], y=-(y_m + self.offset_m[1]), z=0.0)
        ground = world_map.get_waypoint(location)
        location.z = (ground.transform.location.z if ground is not None else 0.0) + lift_m
        return carla.Transform(location, carla.Rotation(yaw=-math.degrees(yaw_rad)))

    def _track_pose(self, transform: Any) -> tuple[float, float, float]:
        """Track-frame (x_m, y_m, yaw_rad) of a CARLA transform."""
        return (transform.location.x - self.offset_m[0], -transform.location.y - self.offset_m[1],
                -math.radians(transform.rotation.yaw))

    # ------------------------------------------------------------ lifecycle
    def _blueprint(self, library: Any, bot: bool, index: int) -> Any:
        key = "bot_blueprint" if bot else "box_blueprint"
        matches = library.filter(self.blueprints[key])
        if len(matches) == 0:
            example = "vehicle.audi.tt" if bot else "static.prop.box01"
            raise ConfigError(f"env_config.carla.race_actors.{key} {self.blueprints[key]!r} matches no blueprint on the server; "
                              f"e.g. {example!r}")
        blueprint = library.find(matches[0].id)  # a fresh copy: each actor gets its own role_name
        if blueprint.has_attribute("role_name"):
            blueprint.set_attribute("role_name", f"{ROLE_PREFIX}{'bot' if bot else 'box'}_{index}")
        return blueprint

    def spawn(self, client: Any, world: Any, objects: RaceObjects) -> None:
        """Spawn one actor per object at its placed pose (after destroy()); footprints from their bounding boxes."""
        bot = objects.config.type == "head_to_bot"
        self._bots = bot
        library, world_map = world.get_blueprint_library(), world.get_map()
        x, y, yaw = objects.poses()
        lift_m = self.lift_m if bot else 0.0
        for j in range(objects.num_objects):
            transform = self._world_transform(world_map, float(x[0, j]), float(y[0, j]), float(yaw[0, j]), lift_m)
            blueprint = self._blueprint(library, bot, j)
            actor = world.try_spawn_actor(blueprint, transform)
            if actor is None:
                self.destroy(client)  # all or none: a half-placed race is never left standing
                raise ConfigError(f"env_config.race: CARLA could not spawn {blueprint.id} for object {j} at "
                                  f"({x[0, j]:.1f}, {y[0, j]:.1f}) m: the spot is taken by the car or another object; "
                                  f"raise env_config.race.min_distance_m or move the positions")
            self.actors.append(actor)
            if bot:  # kinematic: the lane follower sets its pose every step, physics must not fight it
                actor.set_simulate_physics(False)
        st = objects.state
        # A fresh actor's transform is only known after a tick: the poses stay the placed ones until then.
        st.half_length_m[0] = [a.bounding_box.extent.x for a in self.actors]
        st.half_width_m[0] = [a.bounding_box.extent.y for a in self.actors]

    def follow(self, client: Any, world: Any, objects: RaceObjects) -> None:
        """Set every bot to its lane follower's pose, then read every actor's pose back into the objects."""
        st = objects.state
        if self._bots:
            world_map = world.get_map()
            commands = [self.carla.command.ApplyTransform(actor.id, self._world_transform(
                world_map, float(st.x_m[0, j]), float(st.y_m[0, j]), float(st.yaw_rad[0, j]), self.lift_m))
                for j, actor in enumerate(self.actors)]
            client.apply_batch_sync(commands, False)
        poses = np.array([self._track_pose(a.get_transform()) for a in self.actors]).reshape(-1, 3)
        st.x_m[0], st.y_m[0] = poses[:, 0], poses[:, 1]
        st.yaw_rad[0] = np.angle(np.exp(1j * poses[:, 2]))

    def destroy(self, client: Any) -> None:
        """Destroy exactly the actors spawned here (by id)."""
        if self.actors and client is not None:
            client.apply_batch_sync([self.carla.command.DestroyActor(a.id) for a in self.actors], False)
        self.actors = []

    def forget(self) -> list[int]:
        """Drop the handles (the server is lost); their ids, to destroy on reconnect."""
        ids = [a.id for a in self.actors]
        self.actors = []
        return ids
