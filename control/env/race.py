"""The race core: N cars on their tracks, stepped together; RacingEnv and RacingVectorEnv are views of it.

`step()` is a template over arrays: action → backend step → track projection → episode logic →
params → reward → observation → info. Nothing here loops over cars on the step path, except
where a user's reward file needs DeepRacer's per-car dict. The public race state (`states`,
`tracks`, `driving_tracks`, `directions`, `params`, `tracker`, `trails`, ...) is what render and
observations read.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from control.env.actions import make_action_type
from control.env.episode import STATUS, STATUS_NAMES, EpisodeStep, EpisodeTracker
from control.env.observations import camera_settings, make_observation_type
from control.env.rewards import builtin_reward, evaluate_reward, load_reward_function
from control.errors import RewardFunctionError
from control.sim.base import BatchedSimulator, CarStates, SimulatorError
from control.sim.registry import SIMULATORS, SimulatorRequest
from control.track.track import Track

_EMPTY_OBJECT_KEYS = ("closest_objects", "objects_location", "objects_left_of_center", "objects_speed", "objects_heading",
                      "objects_distance", "objects_distance_from_center")


class RaceBatch:
    """N cars of one env config; per-car randomness from per-car generators, so N never changes an episode."""

    def __init__(self, config: Mapping[str, Any], num_cars: int, *, worker_index: int = 0, vector_index: int = 0,
                 is_evaluation: bool = False, keep_trails: bool = False) -> None:
        self.config = dict(config)
        self.num_cars = int(num_cars)
        self.worker_index, self.vector_index, self.is_evaluation = worker_index, vector_index, is_evaluation
        self.observation_type = make_observation_type(self.config["observation"])
        self.action_type = make_action_type(self.config["action"])
        self.user_reward = None if self.config["reward"] in _builtin_names() else load_reward_function(self.config["reward"])
        self._builtin_reward = None
        self.keep_trails = keep_trails
        self.sim: BatchedSimulator | None = None  # built on the first reset: a CARLA server starts only then
        n = self.num_cars
        seed = self.config["seed"]
        self.base_seeds = [None if seed is None else int(seed) + 1000 * worker_index + vector_index + i for i in range(n)]
        self.rngs: list[np.random.Generator | None] = [None] * n
        self.episodes = np.full(n, -1)
        self._round_robin = np.zeros(n, dtype=np.int64)
        self._tracks: dict[str, Track] = {}
        self.tracks: list[Track | None] = [None] * n
        self.driving_tracks: list[Track | None] = [None] * n
        self.directions = ["counter_clockwise"] * n
        self._clockwise = np.zeros(n, dtype=bool)
        self._length_m = np.ones(n)
        self.tracker = EpisodeTracker(n, self.config["termination"], self.config["max_episode_steps"])
        self.params: dict[str, np.ndarray] = {}
        self.steering_cmd_deg, self.speed_cmd_mps = np.zeros(n), np.zeros(n)
        self.action_index = np.full(n, -1)
        self.last_reward = np.zeros(n)
        self.trails: list[list[tuple[float, float, float]]] = [[] for _ in range(n)]

    # ----------------------------------------------------------------- state
    @property
    def states(self) -> CarStates:
        """The cars' states as arrays."""
        return self.sim.states

    @property
    def limits(self):
        """The backend's VehicleLimits (read by observations, rewards, render); known before the backend is built."""
        if self.sim is not None:
            return self.sim.limits
        return SIMULATORS[self.config["simulator"]].limits(self.config)

    def groups_by_track(self, idx: np.ndarray) -> list[tuple[Track, np.ndarray]]:
        """(driving track, positions within idx) for each distinct track of cars idx: one group when all share one."""
        tracks = [self.driving_tracks[i] for i in np.asarray(idx).tolist()]
        first = tracks[0] if tracks else None
        if all(t is first for t in tracks):
            return [(first, np.arange(len(tracks)))]
        groups: dict[int, list[int]] = {}
        for j, t in enumerate(tracks):
            groups.setdefault(id(t), []).append(j)
        return [(tracks[rows[0]], np.array(rows)) for rows in groups.values()]

    # ---------------------------------------------------------------- tracks
    def _procedural_kwargs(self) -> dict[str, Any]:
        p = self.config["procedural"]
        return {"length_m": tuple(p["length_m"]), "width_m": tuple(p["width_m"])}

    def _load_track(self, spec: str) -> Track:
        if spec not in self._tracks:
            self._tracks[spec] = Track.load(spec)
        return self._tracks[spec]

    def initial_track(self) -> Track:
        """The track the config names first (procedural: the seed-0 track), without building a backend."""
        spec = self.config["track"]
        if spec == "procedural":
            from control.track.generate import generate_track

            return generate_track(seed=0, **self._procedural_kwargs())
        return self._load_track(spec[0] if isinstance(spec, list) else spec)

    def _pick_track(self, rng: np.random.Generator) -> Track:
        spec = self.config["track"]
        if spec == "procedural":
            from control.track.generate import generate_track, pooled_track

            pool = int(self.config["procedural"]["pool_size"])
            if pool > 0:  # a fixed pool of seeds, shared by the envs of this process
                seed = int(rng.integers(pool))
                return pooled_track(seed, **self._procedural_kwargs())
            return generate_track(seed=int(rng.integers(2**31 - 1)), **self._procedural_kwargs())
        if isinstance(spec, list):
            return self._load_track(spec[int(rng.integers(len(spec)))])
        return self._load_track(spec)

    def _driving(self, track: Track, clockwise: bool) -> Track:
        """The track in the driving direction (reversed copies cached on the track itself)."""
        if not clockwise:
            return track
        rev = track.__dict__.get("_reversed_track")
        if rev is None:
            rev = track._reversed_track = track.reversed()
        return rev

    def _ensure_sim(self, first_track: Track) -> None:
        if self.sim is None:
            request = SimulatorRequest(self.config, self.num_cars, camera_settings(self.observation_type), first_track,
                                       self.worker_index, self.vector_index, self.is_evaluation)
            self.sim = SIMULATORS[self.config["simulator"]].make(request)
            self._builtin_reward = builtin_reward(self.config["reward"], self.sim.limits.max_speed_mps)

    # ----------------------------------------------------------------- reset
    def reset_cars(self, idx: np.ndarray, seeds: list[int | None] | None = None, options: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start new episodes for cars idx; returns their observations and batched reset infos."""
        idx = np.asarray(idx, dtype=np.intp)
        options = dict(options or {})
        start = self.config["start"]
        x, y, yaw = np.empty(len(idx)), np.empty(len(idx)), np.empty(len(idx))
        for j, i in enumerate(idx.tolist()):
            seed = None if seeds is None else seeds[j]
            if seed is None and self.base_seeds[i] is not None and self.episodes[i] < 0:
                seed = self.base_seeds[i]
            if seed is not None or self.rngs[i] is None:
                self.rngs[i], _ = seeding.np_random(seed)
            rng = self.rngs[i]
            self.episodes[i] += 1
            track = self._pick_track(rng)
            self._ensure_sim(track)
            load_track = getattr(getattr(self.sim, "backend", None), "load_track", None)
            if load_track is not None:  # a backend that owns its route (CARLA maps) says which track the car drives
                track = load_track(track)
            direction = options.get("direction", start["direction"])
            if direction == "random":
                direction = "clockwise" if rng.random() < 0.5 else "counter_clockwise"
            driving = self._driving(track, direction == "clockwise")
            self.tracks[i], self.driving_tracks[i], self.directions[i] = track, driving, direction
            self._clockwise[i] = direction == "clockwise"
            self._length_m[i] = driving.length_m
            n = driving.num_waypoints
            if "start_waypoint" in options:
                s_start = float(driving.cumulative_s_m[int(options["start_waypoint"]) % n])
            elif start["mode"] == "fixed":
                s_start = float(driving.cumulative_s_m[int(start["waypoint"]) % n])
            elif start["mode"] == "round_robin":
                waypoint = (int(start["waypoint"]) + int(self._round_robin[i]) * int(start["round_robin_waypoints"])) % n
                self._round_robin[i] += 1
                s_start = float(driving.cumulative_s_m[waypoint])
            else:
                s_start = float(rng.uniform(0, driving.length_m))
            (pos,), (heading,) = driving.point_at(s_start)
            lateral = float(rng.uniform(-1, 1)) * float(start["lateral_noise_m"])
            pos = pos + lateral * np.array([-math.sin(heading), math.cos(heading)])  # across the track, not the noisy heading
            heading += math.radians(float(rng.uniform(-1, 1)) * float(start["heading_noise_deg"]))
            x[j], y[j], yaw[j] = pos[0], pos[1], heading
        tracks = [self.driving_tracks[i] for i in idx.tolist()]
        try:
            self.sim.reset_cars(idx, x, y, yaw, tracks)
        except SimulatorError:
            # A dead server at reset: the backend restarts it; one more try, then let it raise.
            self.sim.reset_cars(idx, x, y, yaw, tracks)
        proj = self._project(idx)
        st = self.states
        self.tracker.reset(idx, proj["s_m"][:, 0], st.x_m[idx], st.y_m[idx])
        self.steering_cmd_deg[idx], self.speed_cmd_mps[idx], self.action_index[idx] = 0.0, 0.0, -1
        self.last_reward[idx] = 0.0
        if self.keep_trails:
            for i in idx.tolist():
                self.trails[i] = [(float(st.x_m[i]), float(st.y_m[i]), float(st.speed_mps[i]))]
        wheels_on = proj["distance_from_center_m"][:, 1:] <= proj["half_width_m"][:, 1:]
        self._update_params(idx, proj, np.zeros(len(idx)), wheels_on.all(axis=1), np.zeros(len(idx), dtype=bool))
        obs = self.observation_type.observe(self, idx, reset=True)
        infos = {"params": {k: v[idx] for k, v in self.params.items() if k != "waypoint_direction_rad"},
                 "episode_status": STATUS_NAMES[np.full(len(idx), STATUS["prepare"])],
                 "track": np.array([self.tracks[i].name for i in idx.tolist()], dtype=object),
                 "direction": np.array([self.directions[i] for i in idx.tolist()], dtype=object)}
        return obs, infos

    def recover_car(self, i: int) -> Any:
        """Put car i back on the centerline at its nearest point, at rest, facing the driving direction.

        DeepRacer's continuous evaluation: lap progress, steps and the lap timer carry over.
        """
        idx = np.array([i])
        track = self.driving_tracks[i]
        st = self.states
        s_m = float(track.project(np.array([[st.x_m[i], st.y_m[i]]])).s_m[0])
        (pos,), (heading,) = track.point_at(s_m)
        elapsed_s = float(st.time_s[i])
        self.sim.reset_cars(idx, [pos[0]], [pos[1]], [heading], [track])
        # The backend's clock may restart on reset: shift the lap start so lap times stay continuous.
        self.tracker.lap_start_time_s[i] += float(self.states.time_s[i]) - elapsed_s
        proj = self._project(idx)
        self.tracker.s_prev_m[i] = proj["s_m"][0, 0]
        self.tracker.restart_immobilized_window(idx, self.states.x_m[idx], self.states.y_m[idx])
        if self.keep_trails:
            self.trails[i].append((float(self.states.x_m[i]), float(self.states.y_m[i]), 0.0))
        wheels_on = proj["distance_from_center_m"][:, 1:] <= proj["half_width_m"][:, 1:]
        self._update_params(idx, proj, self.params["progress"][idx], wheels_on.all(axis=1), np.zeros(1, dtype=bool),
                            steering_deg=np.zeros(1))
        return self.observation_type.observe(self, idx)

    # ------------------------------------------------------------------ step
    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every car; returns batched observations, rewards, terminated, truncated and infos."""
        steering_deg, speed_cmd_mps, action_index = self.action_type.to_commands(actions)
        self.steering_cmd_deg, self.speed_cmd_mps, self.action_index = steering_deg, speed_cmd_mps, action_index
        try:
            st = self.sim.step(np.radians(steering_deg), speed_cmd_mps)
        except SimulatorError as exc:
            return self._sim_error_step(exc)
        everyone = np.arange(self.num_cars)
        if self.keep_trails:
            for i in everyone.tolist():
                self.trails[i].append((float(st.x_m[i]), float(st.y_m[i]), float(st.speed_mps[i])))
        proj = self._project(everyone)
        wheels_on = proj["distance_from_center_m"][:, 1:] <= proj["half_width_m"][:, 1:]
        ep = self.tracker.step(proj["s_m"][:, 0], self._length_m, st.x_m, st.y_m, st.yaw_rad, proj["heading_rad"][:, 0],
                               wheels_on, st.time_s, st.is_crashed)
        self._update_params(everyone, proj, ep.progress, ep.all_wheels_on_track, ep.off_track, steering_deg=steering_deg)
        reward, components = self._rewards()
        self.last_reward = reward
        obs = self.observation_type.observe(self, everyone)
        return obs, reward, ep.terminated, ep.truncated, self._step_infos(ep, components)

    def _project(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Projection of each car and its four wheels onto its driving track: (k, 5) arrays."""
        st = self.states
        points = np.empty((len(idx), 5, 2))
        points[:, 0, 0], points[:, 0, 1] = st.x_m[idx], st.y_m[idx]
        points[:, 1:] = st.wheel_positions_m[idx]
        groups = self.groups_by_track(idx)
        if len(groups) == 1:
            p = groups[0][0].project_cars(points)
            return {"s_m": p.s_m, "distance_from_center_m": p.distance_from_center_m, "half_width_m": p.half_width_m,
                    "is_left_of_center": p.is_left_of_center, "heading_rad": p.heading_rad,
                    "closest_waypoints": p.closest_waypoints, "waypoint_direction_rad": groups[0][0].waypoint_direction_rad[p.segment_index[:, 0]]}
        out: dict[str, np.ndarray] = {}
        for track, rows in groups:
            p = track.project_cars(points[rows])
            fields = {"s_m": p.s_m, "distance_from_center_m": p.distance_from_center_m, "half_width_m": p.half_width_m,
                      "is_left_of_center": p.is_left_of_center, "heading_rad": p.heading_rad,
                      "closest_waypoints": p.closest_waypoints, "waypoint_direction_rad": track.waypoint_direction_rad[p.segment_index[:, 0]]}
            for key, value in fields.items():
                if key not in out:
                    out[key] = np.empty((len(idx),) + value.shape[1:], dtype=value.dtype)
                out[key][rows] = value
        return out

    def _update_params(self, idx: np.ndarray, proj: dict[str, np.ndarray], progress: np.ndarray, all_on: np.ndarray,
                       off_track: np.ndarray, steering_deg: np.ndarray | None = None) -> None:
        """DeepRacer's reward params of cars idx, as (N,) arrays (all but waypoints and the object lists)."""
        n = self.num_cars
        if not self.params:
            self.params = {
                "all_wheels_on_track": np.zeros(n, dtype=bool), "x": np.zeros(n), "y": np.zeros(n), "heading": np.zeros(n),
                "distance_from_center": np.zeros(n), "is_left_of_center": np.zeros(n, dtype=bool), "progress": np.zeros(n),
                "steps": np.zeros(n, dtype=np.int64), "speed": np.zeros(n), "steering_angle": np.zeros(n),
                "track_width": np.zeros(n), "track_length": np.zeros(n), "closest_waypoints": np.zeros((n, 2), dtype=np.int64),
                "is_reversed": np.zeros(n, dtype=bool), "is_crashed": np.zeros(n, dtype=bool), "is_offtrack": np.zeros(n, dtype=bool),
                "projection_distance": np.zeros(n), "waypoint_direction_rad": np.zeros(n),
            }
        p, st = self.params, self.states
        p["all_wheels_on_track"][idx] = all_on
        p["x"][idx], p["y"][idx] = st.x_m[idx], st.y_m[idx]
        yaw = st.yaw_rad[idx]
        p["heading"][idx] = np.degrees(yaw - math.tau * np.rint(yaw / math.tau))
        p["distance_from_center"][idx] = proj["distance_from_center_m"][:, 0]
        p["is_left_of_center"][idx] = proj["is_left_of_center"][:, 0]
        p["progress"][idx] = progress
        p["steps"][idx] = self.tracker.steps[idx]
        # The car's measured speed, not the action's target: a reward on the commanded speed can be
        # gamed (command fast, drive slowly). Steering is the action's, as in DeepRacer.
        p["speed"][idx] = st.speed_mps[idx]
        p["steering_angle"][idx] = 0.0 if steering_deg is None else steering_deg
        p["track_width"][idx] = 2 * proj["half_width_m"][:, 0]
        p["track_length"][idx] = self._length_m[idx]
        p["closest_waypoints"][idx] = proj["closest_waypoints"][:, 0]
        p["is_reversed"][idx] = self._clockwise[idx]
        p["is_crashed"][idx] = st.is_crashed[idx]
        p["is_offtrack"][idx] = off_track
        p["projection_distance"][idx] = proj["s_m"][:, 0]
        p["waypoint_direction_rad"][idx] = proj["waypoint_direction_rad"]

    def car_params(self, i: int, waypoints: bool = False) -> dict[str, Any]:
        """DeepRacer's params dict of car i with Python values (waypoints only when asked)."""
        p = self.params
        out = {key: p[key][i].item() for key in ("all_wheels_on_track", "x", "y", "heading", "distance_from_center",
                                                  "is_left_of_center", "progress", "steps", "speed", "steering_angle",
                                                  "track_width", "track_length")}
        out["closest_waypoints"] = p["closest_waypoints"][i].tolist()
        for key in ("is_reversed", "is_crashed", "is_offtrack"):
            out[key] = bool(p[key][i])
        for key in _EMPTY_OBJECT_KEYS:
            out[key] = []
        out["projection_distance"] = float(p["projection_distance"][i])
        if waypoints:
            track = self.driving_tracks[i]
            cached = track.__dict__.get("_waypoints_list")
            if cached is None:
                cached = track._waypoints_list = track.waypoints_list()
            out["waypoints"] = cached
        return out

    def _rewards(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards (N,) and their components; built-ins over arrays, a user file once per car."""
        if self.user_reward is None:
            try:
                components = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (self.num_cars,)) for k, v in self._builtin_reward(self.params).items()}
            except Exception as exc:
                raise RewardFunctionError(f"reward function raised {type(exc).__name__}: {exc} at step {self.tracker.steps.tolist()}") from exc
            total = np.add.reduce(list(components.values())) if components else np.zeros(self.num_cars)
            bad = ~np.isfinite(total)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise RewardFunctionError(f"reward function returned non-finite {total[i]} at step {int(self.tracker.steps[i])} "
                                          f"(components { {k: float(v[i]) for k, v in components.items()} })")
            return total, components
        totals = np.empty(self.num_cars)
        values = np.empty(self.num_cars)
        for i in range(self.num_cars):
            totals[i], comp = evaluate_reward(self.user_reward, self.car_params(i, waypoints=True), int(self.tracker.steps[i]))
            values[i] = comp.get("reward_function", totals[i])
        return totals, {"reward_function": values}

    def _step_infos(self, ep: EpisodeStep, components: dict[str, np.ndarray]) -> dict[str, Any]:
        """The batched info of a step (gymnasium's vector format without the masks)."""
        st = self.states
        p = {k: v.copy() for k, v in self.params.items() if k != "waypoint_direction_rad"}
        infos: dict[str, Any] = {
            "params": p,
            "episode_status": STATUS_NAMES[ep.status],
            "steering_deg": self.steering_cmd_deg.copy(),
            "speed_cmd_mps": self.speed_cmd_mps.copy(),
            "action_index": self.action_index.copy(),
            "sim_time_s": st.time_s.copy(),
            "reward_components": {k: np.array(v) for k, v in components.items()},
            "laps_completed": self.tracker.laps_completed.copy(),
            "vehicle": {"speed_mps": st.speed_mps.copy(), "steering_deg": np.degrees(st.steering_rad),
                        "yaw_deg": np.degrees(st.yaw_rad)},
            "lap_time_s": ep.lap_time_s,
            "_lap_time_s": ep.lap_complete.copy(),
        }
        if ep.truncated.any():
            infos["truncated_reason"] = np.where(ep.truncated, "max_episode_steps", "").astype(object)
            infos["_truncated_reason"] = ep.truncated.copy()
        return infos

    def _sim_error_step(self, exc: SimulatorError) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A backend fault ends every car's episode as truncated; the observation is the last good one."""
        n = self.num_cars
        everyone = np.arange(n)
        try:
            obs = self.observation_type.observe(self, everyone)
        except Exception:  # the camera frame may be gone with the server
            import gymnasium as gym

            space = self.observation_type.space()  # zeros of the space, a Dict ("both") included
            one = gym.spaces.utils.unflatten(space, np.zeros(gym.spaces.utils.flatdim(space)))
            obs = {k: np.stack([v] * n) for k, v in one.items()} if isinstance(one, dict) else np.stack([one] * n)
        infos = {
            "params": {k: v.copy() for k, v in self.params.items() if k != "waypoint_direction_rad"},
            "episode_status": STATUS_NAMES[np.full(n, STATUS["sim_error"])],
            "truncated_reason": np.array([f"simulator error: {exc}"] * n, dtype=object),
            "_truncated_reason": np.ones(n, dtype=bool),
            "steering_deg": self.steering_cmd_deg.copy(), "speed_cmd_mps": self.speed_cmd_mps.copy(),
            "action_index": self.action_index.copy(), "sim_time_s": self.states.time_s.copy(),
            "reward_components": {}, "laps_completed": self.tracker.laps_completed.copy(),
        }
        return obs, np.zeros(n), np.zeros(n, dtype=bool), np.ones(n, dtype=bool), infos

    def close(self) -> None:
        """Release the backend."""
        if self.sim is not None:
            self.sim.close()
            self.sim = None


def _builtin_names() -> tuple[str, ...]:
    from control.env.rewards import BUILTIN_REWARDS

    return tuple(BUILTIN_REWARDS)
