"""RacingEnv: a car laps a closed track; backend-agnostic, DeepRacer reward API."""
from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from control.env.actions import make_action_type
from control.env.config import validate_env_config
from control.env.observations import camera_settings, make_observation_type
from control.env.rewards import evaluate_reward, load_reward_function
from control.sim.base import Pose, SimulatorBackend, SimulatorError, VehicleState
from control.track.track import Track

EPISODE_STATUSES = ("in_progress", "lap_complete", "off_track", "crashed", "immobilized", "reversed", "time_up", "sim_error")


class RacingEnv(gym.Env):
    """A Gymnasium env: one car, one closed track, a camera and/or virtual-lidar observation.

    `config` is the env_config (a dict, or RLlib's EnvContext with worker_index/vector_index);
    keyword arguments override it, so `gym.make("RacerVLidar-v0", track="hairpins")` works.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 15}

    def __init__(self, config: Mapping[str, Any] | None = None, render_mode: str | None = None, **kwargs: Any) -> None:
        raw = {**dict(config or {}), **kwargs}
        self.worker_index = int(getattr(config, "worker_index", 0) or 0)
        self.vector_index = int(getattr(config, "vector_index", 0) or 0)
        self.is_evaluation = bool(getattr(config, "in_evaluation", False) or raw.pop("_in_evaluation", False))
        self.config = validate_env_config(raw)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; expected one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.observation_type = make_observation_type(self.config["observation"])
        self.action_type = make_action_type(self.config["action"])
        self.reward_fn = load_reward_function(self.config["reward"])
        self.observation_space = self.observation_type.space()
        self.action_space = self.action_type.space()

        self._tracks: dict[str, Track] = {}
        self._sims: dict[str, SimulatorBackend] = {}
        self.track = self._initial_track()
        self.sim = self._simulator_for(self.track)
        self.control_hz = float(getattr(self.sim, "control_hz", 15.0))
        builtin = self.sim.config if hasattr(self.sim, "config") and isinstance(self.sim.config, dict) else {}
        self.max_speed_mps = float(builtin.get("max_speed_mps", 4.0))
        self.max_steering_rad = math.radians(float(builtin.get("max_steering_deg", 30.0)))
        self.driving_track = self.track
        self.vehicle: VehicleState | None = None
        self._episode = -1
        self._round_robin_index = 0
        self.trail: list[tuple[float, float, float]] = []  # (x_m, y_m, speed_mps) since reset, for render
        if self.config["seed"] is not None:
            self._base_seed: int | None = int(self.config["seed"]) + 1000 * self.worker_index + self.vector_index
        else:
            self._base_seed = None

    # --------------------------------------------------------------- tracks & sims
    def _initial_track(self) -> Track:
        spec = self.config["track"]
        if spec == "procedural":
            from control.track.generate import generate_track

            return generate_track(seed=0, **self._procedural_kwargs())
        first = spec[0] if isinstance(spec, list) else spec
        return self._load_track(first)

    def _procedural_kwargs(self) -> dict[str, Any]:
        p = self.config["procedural"]
        return {"length_m": tuple(p["length_m"]), "width_m": tuple(p["width_m"])}

    def _load_track(self, spec: str) -> Track:
        if spec not in self._tracks:
            self._tracks[spec] = Track.load(spec)
        return self._tracks[spec]

    def _pick_track(self) -> Track:
        spec = self.config["track"]
        if spec == "procedural":
            from control.track.generate import generate_track, pooled_track

            pool = int(self.config["procedural"]["pool_size"])
            if pool > 0:  # a fixed pool of seeds, shared by the envs of this process
                seed = int(self.np_random.integers(pool))
                key = f"procedural:{seed}"
                self._tracks[key] = pooled_track(seed, **self._procedural_kwargs())
                self._drop_cached(keep=key)
                return self._tracks[key]
            seed = int(self.np_random.integers(2**31 - 1))
            key = f"procedural:{seed}"
            self._tracks[key] = generate_track(seed=seed, **self._procedural_kwargs())
            self._drop_cached(keep=key)  # fresh tracks every episode: do not hoard them
            return self._tracks[key]
        if isinstance(spec, list):
            return self._load_track(spec[int(self.np_random.integers(len(spec)))])
        return self._load_track(spec)

    def _drop_cached(self, keep: str) -> None:
        for key in [k for k in self._tracks if k != keep and "procedural:" in k]:
            del self._tracks[key]
            sim = self._sims.pop(key, None)
            if sim is not None and sim is not getattr(self, "sim", None):
                sim.close()

    def _track_key(self, track: Track) -> str:
        return next((k for k, t in self._tracks.items() if t is track), track.name)

    def _simulator_for(self, track: Track) -> SimulatorBackend:
        """The simulator for `track` (one per track: the builtin camera rasterises its track once)."""
        key = self._track_key(track)
        if key in self._sims:
            return self._sims[key]
        if self.config["simulator"] == "carla":
            if self._sims:  # CARLA: one server and one world; the track lives on the map
                sim = next(iter(self._sims.values()))
            else:
                sim = self._make_carla(track)
        else:
            from control.sim.builtin import BuiltinSimulator

            builtin = dict(self.config["builtin"])
            cam = camera_settings(self.observation_type)
            if cam is not None:
                builtin["camera"] = {**builtin.get("camera", {}), **cam}
            sim = BuiltinSimulator(track, builtin)
        self._sims[key] = sim
        return sim

    def _make_carla(self, track: Track) -> SimulatorBackend:
        from control.carla.backend import CarlaSimulator

        carla_config = dict(self.config["carla"])
        cam = camera_settings(self.observation_type)
        if cam is not None:
            # The observation space fixes the image size: the CARLA sensor must render exactly that.
            carla_config["camera"] = {**(carla_config.get("camera") or {}), "width": cam["width_px"], "height": cam["height_px"]}
        sim = CarlaSimulator(
            carla_config,
            track,
            run_name=self.config["run_name"],
            runner_index=self.worker_index,
            vector_index=self.vector_index,
            is_evaluation=self.is_evaluation,
            control_hz=15.0,
        )
        if getattr(sim, "track", None) is not None and sim.track is not track:
            self.track = sim.track  # the route came from the CARLA map
        return sim

    # ---------------------------------------------------------------------- api
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        if seed is None and self._base_seed is not None and self._episode < 0:
            seed = self._base_seed
        super().reset(seed=seed)
        self._episode += 1
        self.track = self._pick_track()
        self.sim = self._simulator_for(self.track)
        if hasattr(self.sim, "load_track"):  # CARLA: a map route is built, and its server started, on first reset
            self.track = self.sim.load_track(self.track)
        options = options or {}
        start = self.config["start"]
        direction = options.get("direction", start["direction"])
        if direction == "random":
            direction = "clockwise" if self.np_random.random() < 0.5 else "counter_clockwise"
        self.direction = direction
        self.driving_track = self.track if direction == "counter_clockwise" else self._reversed(self.track)

        n = self.driving_track.num_waypoints
        if "start_waypoint" in options:
            waypoint = int(options["start_waypoint"]) % n
            s_start = float(self.driving_track.cumulative_s_m[waypoint])
        elif start["mode"] == "fixed":
            s_start = float(self.driving_track.cumulative_s_m[int(start["waypoint"]) % n])
        elif start["mode"] == "round_robin":
            waypoint = (int(start["waypoint"]) + self._round_robin_index * int(start["round_robin_waypoints"])) % n
            self._round_robin_index += 1
            s_start = float(self.driving_track.cumulative_s_m[waypoint])
        else:
            s_start = float(self.np_random.uniform(0, self.driving_track.length_m))
        (pos,), (heading,) = self.driving_track.point_at(s_start)
        lateral = float(self.np_random.uniform(-1, 1)) * float(start["lateral_noise_m"])
        pos = pos + lateral * np.array([-math.sin(heading), math.cos(heading)])  # across the track, not the noisy heading
        heading += math.radians(float(self.np_random.uniform(-1, 1)) * float(start["heading_noise_deg"]))
        try:
            self.vehicle = self.sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))
        except SimulatorError:
            # A dead server at reset: the backend restarts it; one more try, then let it raise.
            self.vehicle = self.sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))

        self._steps = 0
        self._s_prev = float(self.driving_track.project(np.array([[self.vehicle.x_m, self.vehicle.y_m]])).s_m[0])
        self._travelled_m = 0.0
        self._laps_completed = 0
        self._lap_start_time_s = 0.0
        self._lap_times_s: list[float] = []
        self._recent_positions: deque[tuple[float, float]] = deque(maxlen=int(self.config["termination"]["immobilized_steps"]) + 1)
        self._recent_positions.append((self.vehicle.x_m, self.vehicle.y_m))
        self._wrong_way_steps = 0
        self.trail = [(self.vehicle.x_m, self.vehicle.y_m, self.vehicle.speed_mps)]
        self.last_command = (0.0, 0.0, -1)
        self.last_reward = 0.0
        self.observation_type.reset(self)
        self.params = self._params(self.driving_track.project(self._car_and_wheels(), local=True), 0.0, 0.0)
        info = {"params": self.params, "episode_status": "prepare", "track": self.track.name, "direction": self.direction}
        return self.observation_type.observe(self), info

    def recover_to_track(self) -> Any:
        """Put the car back on the centerline at its nearest point, at rest, facing the driving direction.

        DeepRacer's continuous evaluation: the episode goes on after going off track; lap progress, steps
        and the lap timer carry over. Returns the new observation.
        """
        v = self.vehicle
        s_m = float(self.driving_track.project(np.array([[v.x_m, v.y_m]])).s_m[0])
        (pos,), (heading,) = self.driving_track.point_at(s_m)
        elapsed_s = v.time_s
        self.vehicle = self.sim.reset(Pose(float(pos[0]), float(pos[1]), float(heading)))
        # The backend's clock may restart on reset: shift the lap start so lap times stay continuous.
        self._lap_start_time_s += self.vehicle.time_s - elapsed_s
        proj = self.driving_track.project(self._car_and_wheels(), local=True)
        self._s_prev = float(proj.s_m[0])
        self._recent_positions.clear()
        self._recent_positions.append((self.vehicle.x_m, self.vehicle.y_m))
        self._wrong_way_steps = 0
        self.trail.append((self.vehicle.x_m, self.vehicle.y_m, 0.0))
        self.params = self._params(proj, self.params["progress"], 0.0)
        return self.observation_type.observe(self)

    def _reversed(self, track: Track) -> Track:
        key = f"reversed:{self._track_key(track)}"
        if key.startswith("reversed:procedural:") and int(self.config["procedural"]["pool_size"]) > 0:
            from control.track.generate import pooled_track

            return pooled_track(int(key.rsplit(":", 1)[1]), **self._procedural_kwargs(), reverse=True)
        if key not in self._tracks:
            self._tracks[key] = track.reversed()
        return self._tracks[key]

    def _car_and_wheels(self) -> np.ndarray:
        v = self.vehicle
        points = np.empty((5, 2))
        points[0] = v.x_m, v.y_m
        points[1:] = v.wheel_positions_m
        return points

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        steering_deg, speed_cmd_mps, action_index = self.action_type.to_command(action)
        self.last_command = (steering_deg, speed_cmd_mps, action_index)
        try:
            self.vehicle = self.sim.step(math.radians(steering_deg), speed_cmd_mps)
        except SimulatorError as exc:
            return self._sim_error_step(exc)
        self._steps += 1
        v = self.vehicle
        self.trail.append((v.x_m, v.y_m, v.speed_mps))
        proj = self.driving_track.project(self._car_and_wheels(), local=True)

        # Progress: signed distance along the driving direction, unwrapped across the start line.
        length = self.driving_track.length_m
        s_now = float(proj.s_m[0])
        ds = (s_now - self._s_prev + length / 2) % length - length / 2
        self._s_prev = s_now
        self._travelled_m += ds
        lap_progress_m = self._travelled_m - self._laps_completed * length

        wheels_on = (proj.distance_from_center_m <= proj.half_width_m).tolist()[1:]
        all_on = all(wheels_on)
        off_track = not any(wheels_on)
        lap_time_s = None
        if lap_progress_m >= length:
            self._laps_completed += 1
            lap_time_s = v.time_s - self._lap_start_time_s
            self._lap_start_time_s = v.time_s
            self._lap_times_s.append(lap_time_s)
            lap_complete = True
        else:
            lap_complete = False
        progress = 100.0 if lap_complete else min(max(100.0 * lap_progress_m / length, 0.0), 100.0)

        term = self.config["termination"]
        heading_error = math.remainder(v.yaw_rad - float(proj.heading_rad[0]), math.tau)
        wrong_way = math.cos(heading_error) < 0 and ds < 0
        self._wrong_way_steps = self._wrong_way_steps + 1 if wrong_way else 0
        self._recent_positions.append((v.x_m, v.y_m))
        moved_m = math.dist(self._recent_positions[0], self._recent_positions[-1])

        status = "in_progress"
        if lap_complete and self._laps_completed >= int(term["laps"]):
            status = "lap_complete"
        elif v.is_crashed:
            status = "crashed"
        elif off_track and term["off_track"]:
            status = "off_track"
        elif term["reversed"] and self._wrong_way_steps >= int(term["reversed_steps"]):
            status = "reversed"
        elif len(self._recent_positions) == self._recent_positions.maxlen and moved_m < float(term["immobilized_distance_m"]):
            status = "immobilized"
        terminated = status != "in_progress"
        truncated = not terminated and self._steps >= int(self.config["max_episode_steps"])
        if truncated:
            status = "time_up"

        self.params = self._params(proj, progress, steering_deg, all_on=all_on, off_track=off_track)
        reward, components = evaluate_reward(self.reward_fn, {**self.params, "waypoints": self._waypoints()}, self._steps)
        self.last_reward = reward
        info = {
            "params": self.params,
            "episode_status": status,
            "steering_deg": steering_deg,
            "speed_cmd_mps": speed_cmd_mps,
            "action_index": action_index,
            "sim_time_s": v.time_s,
            "reward_components": components,
            "laps_completed": self._laps_completed,
            "vehicle": {"speed_mps": v.speed_mps, "steering_deg": math.degrees(v.steering_rad), "yaw_deg": math.degrees(v.yaw_rad)},
        }
        if lap_time_s is not None:
            info["lap_time_s"] = lap_time_s
        if truncated:
            info["truncated_reason"] = "max_episode_steps"
        return self.observation_type.observe(self), reward, terminated, truncated, info

    def _sim_error_step(self, exc: SimulatorError) -> tuple[Any, float, bool, bool, dict]:
        """A backend fault ends the episode as truncated; the observation is the last good one."""
        info = {
            "params": self.params,
            "episode_status": "sim_error",
            "truncated_reason": f"simulator error: {exc}",
            "steering_deg": self.last_command[0],
            "speed_cmd_mps": self.last_command[1],
            "action_index": self.last_command[2],
            "sim_time_s": self.vehicle.time_s if self.vehicle else 0.0,
            "reward_components": {},
            "laps_completed": self._laps_completed,
        }
        try:
            obs = self.observation_type.observe(self)
        except Exception:  # the camera frame may be gone with the server
            space = self.observation_space  # zeros of the space, a Dict ("both") included
            obs = gym.spaces.utils.unflatten(space, np.zeros(gym.spaces.utils.flatdim(space)))
        return obs, 0.0, False, True, info

    def _waypoints(self) -> list[tuple[float, float]]:
        track = self.driving_track
        cached = getattr(track, "_waypoints_list", None)
        if cached is None:
            cached = track.waypoints_list()
            track._waypoints_list = cached
        return cached

    def _params(self, proj, progress: float, steering_deg: float, all_on: bool | None = None, off_track: bool = False) -> dict[str, Any]:
        """DeepRacer's reward params for the current state (all but `waypoints`)."""
        v = self.vehicle
        if all_on is None:
            all_on = bool(np.all(proj.distance_from_center_m[1:] <= proj.half_width_m[1:]))
        return {
            "all_wheels_on_track": all_on,
            "x": v.x_m,
            "y": v.y_m,
            "heading": math.degrees(math.remainder(v.yaw_rad, math.tau)),
            "distance_from_center": float(proj.distance_from_center_m[0]),
            "is_left_of_center": bool(proj.is_left_of_center[0]),
            "progress": progress,
            "steps": self._steps,
            # The car's measured speed, not the action's target: a reward on the commanded speed can be
            # gamed (command fast, drive slowly, collect reward for longer). Steering is the action's,
            # as in DeepRacer; info["speed_cmd_mps"] and info["vehicle"] hold both.
            "speed": v.speed_mps,
            "steering_angle": steering_deg,
            "track_width": float(2 * proj.half_width_m[0]),
            "track_length": self.driving_track.length_m,
            "closest_waypoints": [int(proj.closest_waypoints[0, 0]), int(proj.closest_waypoints[0, 1])],
            "is_reversed": self.direction == "clockwise",
            "is_crashed": bool(v.is_crashed),
            "is_offtrack": bool(off_track),
            "closest_objects": [],
            "objects_location": [],
            "objects_left_of_center": [],
            "objects_speed": [],
            "objects_heading": [],
            "objects_distance": [],
            "objects_distance_from_center": [],
            "projection_distance": float(proj.s_m[0]),
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from control.env.render import render_frame

        return render_frame(self)

    def close(self) -> None:
        for sim in {id(s): s for s in self._sims.values()}.values():
            sim.close()
        self._sims.clear()
