"""The race core: N cars on their tracks, stepped together; RacingEnv and RacingVectorEnv are views of it.

`step()` is a template over arrays: action → backend step → track projection → episode logic →
params → reward → observation → info. Nothing here loops over cars on the step path, except
where a user's reward file needs DeepRacer's per-car dict. The public race state (`states`,
`tracks`, `driving_tracks`, `directions`, `params`, `tracker`, `trails`, ...) is what render and
observations read.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numba
import numpy as np
from gymnasium.utils import seeding

from control.env.actions import make_action_type
from control.env.episode import STATUS, STATUS_NAMES, EpisodeStep, EpisodeTracker, step_episodes
from control.env.observations import camera_settings, make_observation_type
from control.env.rewards import TRACK_BUILTIN_REWARDS, builtin_reward, evaluate_reward, load_reward_function
from control.errors import RewardFunctionError
from control.sim.base import BatchedSimulator, CarStates, SimulatorError
from control.sim.objects import ObjectParams, RaceConfig, RaceObjects, mark_collisions, object_params
from control.sim.registry import SIMULATORS, SimulatorRequest
from control.track.kernels import project_race
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
        # DeepRacer's params of every car as rows of three blocks (floats, bools, ints), so a step writes them in
        # one compiled call and an info copies three arrays; `params` holds the (N,) row views by name.
        self._param_f = np.zeros((len(_FLOAT_PARAMS), n))
        self._param_b = np.zeros((len(_BOOL_PARAMS), n), dtype=bool)
        self._param_i = np.zeros((3, n), dtype=np.int64)  # steps, closest waypoint behind, ahead
        self.params: dict[str, np.ndarray] = _param_views(self._param_f, self._param_b, self._param_i, with_direction=True)
        self._one_track: Track | None = None  # the driving track when every car drives the same one
        self._everyone = np.arange(n, dtype=np.intp)  # the kernels take car rows
        self._nearest_hint = np.zeros(n, dtype=np.int64)  # each car's nearest waypoint last time: where the projection looks first
        # Projection of every car (s, distance, half width, left, heading, closest waypoints, direction, wheels on).
        self._proj_buffers = (np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n),
                              np.zeros((n, 2), dtype=np.int64), np.zeros(n), np.zeros((n, 4), dtype=bool))
        self.steering_cmd_deg, self.speed_cmd_mps = np.zeros(n), np.zeros(n)
        self.action_index = np.full(n, -1)
        self.last_reward = np.zeros(n)
        self._speed_sum_mps = np.zeros(n)  # measured speed summed over each car's episode steps (lean infos' mean)
        # "lean": a car's info carries only its lap times and, on its last step, the episode's results
        # (training: RLlib splits and stores every step's info of every car, ≈ 40 µs per env step when full).
        self.lean_infos = self.config.get("infos") == "lean"
        self.trails: list[list[tuple[float, float, float]]] = [[] for _ in range(n)]
        # Boxes or bot cars (env_config.race), on the one driving track; None in time trials.
        self.race_config = RaceConfig.model_validate(dict(self.config.get("race") or {}))
        self.race_objects: RaceObjects | None = None
        self._object_params: ObjectParams | None = None  # this step's, computed when a reward file asks

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
        if self._one_track is not None:
            return [(self._one_track, self._everyone if len(idx) == self.num_cars else np.arange(len(idx)))]
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
            track_reward = TRACK_BUILTIN_REWARDS.get(self.config["reward"])  # over arrays, with each car's waypoints
            self._builtin_reward = (builtin_reward(self.config["reward"], self.sim.limits.max_speed_mps) if track_reward is None
                                    else functools.partial(self._with_waypoints, track_reward))

    # ----------------------------------------------------------------- reset
    def _place_cars(self, idx: np.ndarray, seeds: list[int | None] | None, options: Mapping[str, Any]) -> None:
        """Draw each car's track, direction and start pose from its own generator, and place the cars (one backend call)."""
        start = self.config["start"]
        k = len(idx)
        s_start, lateral, heading_noise = np.empty(k), np.empty(k), np.empty(k)
        random_start = start["mode"] == "random" and "start_waypoint" not in options
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
            # One draw of the car's doubles: Generator.uniform(lo, hi) is lo + (hi - lo) * random(), so this is
            # the same stream as uniform(0, L), uniform(-1, 1), uniform(-1, 1) one by one.
            u = rng.random(3 if random_start else 2).tolist()
            if "start_waypoint" in options:
                s_start[j] = driving.cumulative_s_m[int(options["start_waypoint"]) % n]
            elif start["mode"] == "fixed":
                s_start[j] = driving.cumulative_s_m[int(start["waypoint"]) % n]
            elif start["mode"] == "round_robin":
                waypoint = (int(start["waypoint"]) + int(self._round_robin[i]) * int(start["round_robin_waypoints"])) % n
                self._round_robin[i] += 1
                s_start[j] = driving.cumulative_s_m[waypoint]
            else:
                s_start[j] = 0.0 + driving.length_m * u.pop(0)
            lateral[j] = -1.0 + 2.0 * u[0]
            heading_noise[j] = -1.0 + 2.0 * u[1]
        placed = [self.driving_tracks[i] for i in idx.tolist()]
        if self._one_track is None or any(t is not self._one_track for t in placed):
            first = self.driving_tracks[0]
            self._one_track = first if all(t is first for t in self.driving_tracks) else None
        x, y, yaw = np.empty(k), np.empty(k), np.empty(k)
        for track, rows in self.groups_by_track(idx):
            x[rows], y[rows], yaw[rows] = track.start_poses(s_start[rows], lateral[rows], heading_noise[rows],
                                                           start["lateral_noise_m"], start["heading_noise_deg"])
        tracks = placed
        try:
            self.sim.reset_cars(idx, x, y, yaw, tracks)
        except SimulatorError:
            # A dead server at reset: the backend restarts it; one more try, then let it raise.
            self.sim.reset_cars(idx, x, y, yaw, tracks)
        if self.race_config.type != "time_trial":
            self._place_objects(idx, s_start)

    def _place_objects(self, idx: np.ndarray, s_start: np.ndarray) -> None:
        """Place the boxes or bots of envs idx for their new episodes, from each car's generator (after its start draws)."""
        if self.race_objects is None:
            self.race_objects = RaceObjects(self.race_config, self._one_track, self.num_cars)
        self.race_objects.reset(idx, [self.rngs[i] for i in idx.tolist()], s_start)
        self._mirror_objects()
        self.states.is_crashed[idx] = False  # the builtin backend reports no crashes of its own: the objects' are the only ones
        self._object_params = None

    def _collide_objects(self) -> None:
        """Advance the bots one control step and mark every car whose footprint overlaps an object as crashed."""
        st, race = self.states, self.race_config
        self.race_objects.step(st.time_s, 1.0 / self.limits.control_hz)
        self._mirror_objects()
        mark_collisions(self.race_objects, st.x_m, st.y_m, st.yaw_rad, 0.5 * race.bot_length_m, 0.5 * race.bot_width_m, st.is_crashed)
        self._object_params = None

    def _mirror_objects(self) -> None:
        """A backend with a world of its own (CARLA) keeps the objects as its actors and writes their poses back."""
        sync = getattr(getattr(self.sim, "backend", None), "sync_race_objects", None)
        if sync is not None:
            sync(self.race_objects)

    def object_params(self) -> ObjectParams | None:
        """DeepRacer's object params of every car this step (None in time trials)."""
        if self.race_objects is None:
            return None
        if self._object_params is None:
            st = self.states
            # object_in_camera against the camera this backend renders (DeepRacer's default when it has none)
            camera = getattr(self.sim, "camera_spec", None) or getattr(getattr(self.sim, "backend", None), "camera_spec", None)
            self._object_params = object_params(self.race_objects, st.x_m, st.y_m, st.yaw_rad, self.params["projection_distance"],
                                                camera=camera)
        return self._object_params

    def reset_cars(self, idx: np.ndarray, seeds: list[int | None] | None = None, options: Mapping[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        """Start new episodes for cars idx; returns their observations and batched reset infos."""
        idx = np.asarray(idx, dtype=np.intp)
        self._place_cars(idx, seeds, dict(options or {}))
        proj = self._project(idx)
        st = self.states
        self.tracker.reset(idx, proj["s_m"], st.x_m[idx], st.y_m[idx])
        self._speed_sum_mps[idx] = 0.0
        self.steering_cmd_deg[idx], self.speed_cmd_mps[idx], self.action_index[idx] = 0.0, 0.0, -1
        self.last_reward[idx] = 0.0
        if self.keep_trails:
            for i in idx.tolist():
                self.trails[i] = [(float(st.x_m[i]), float(st.y_m[i]), float(st.speed_mps[i]))]
        self._update_params(idx, proj, np.zeros(len(idx)), proj["wheels_on"].all(axis=1), np.zeros(len(idx), dtype=bool))
        obs = self.observation_type.observe(self, idx, reset=True)
        params = {k: v[idx] for k, v in self.params.items() if k != "waypoint_direction_rad"}
        params["closest_waypoints"] = _waypoint_lists(params["closest_waypoints"])
        infos = {"params": params,
                 "episode_status": STATUS_NAMES[np.full(len(idx), STATUS["prepare"])],
                 "track": np.array([self.tracks[i].name for i in idx.tolist()], dtype=object),
                 "direction": np.array([self.directions[i] for i in idx.tolist()], dtype=object)}
        every = np.ones(len(idx), dtype=bool)
        return obs, {**infos, **{f"_{key}": every for key in infos}}

    def recover_car(self, i: int, behind_m: float = 0.0) -> Any:
        """Put car i back on the centerline at its nearest point (or behind_m back along it), at rest, facing the driving direction.

        DeepRacer's continuous evaluation: lap progress, steps and the lap timer carry over; after a crash
        DeepRacer puts the car back behind the crash point (DR_EVAL_RESET_BEHIND_DIST), clear of the object.
        """
        idx = np.array([i])
        track = self.driving_tracks[i]
        st = self.states
        s_m = float(track.project(np.array([[st.x_m[i], st.y_m[i]]])).s_m[0]) - float(behind_m)
        self.tracker.travelled_m[i] -= float(behind_m)  # the metres driven again are not progress twice
        if self.race_objects is not None:  # the crash into an object is over once the car is put back
            st.is_crashed[i], self._object_params = False, None
        (pos,), (heading,) = track.point_at(s_m)
        elapsed_s = float(st.time_s[i])
        self.sim.reset_cars(idx, [pos[0]], [pos[1]], [heading], [track])
        # The backend's clock may restart on reset: shift the lap start so lap times stay continuous.
        self.tracker.lap_start_time_s[i] += float(self.states.time_s[i]) - elapsed_s
        proj = self._project(idx)
        self.tracker.s_prev_m[i] = proj["s_m"][0]
        self.tracker.restart_immobilized_window(idx, self.states.x_m[idx], self.states.y_m[idx])
        if self.keep_trails:
            self.trails[i].append((float(self.states.x_m[i]), float(self.states.y_m[i]), 0.0))
        self._update_params(idx, proj, self.params["progress"][idx], proj["wheels_on"].all(axis=1), np.zeros(1, dtype=bool),
                            steering_deg=np.zeros(1))
        return self.observation_type.observe(self, idx)

    # ------------------------------------------------------------------ step
    def step(self, actions: Any, resetting: np.ndarray | None = None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every car; returns batched observations, rewards, terminated, truncated and infos.

        Cars where `resetting` is True start a new episode in the same pass instead (the vector env's
        NEXT_STEP autoreset): their action is ignored, they get their reset observation, reward 0,
        not done, and the reset info (episode_status "prepare", params, track, direction).
        """
        steering_deg, speed_cmd_mps, action_index = self.action_type.to_commands(actions)
        reset_idx = None if resetting is None or not resetting.any() else np.flatnonzero(resetting)
        if reset_idx is not None:  # to_commands returns fresh arrays
            steering_deg[reset_idx], speed_cmd_mps[reset_idx] = 0.0, 0.0
            action_index = np.array(action_index)
            action_index[reset_idx] = -1
        self.steering_cmd_deg, self.speed_cmd_mps, self.action_index = steering_deg, speed_cmd_mps, action_index
        try:
            st = self.sim.step(np.radians(steering_deg), speed_cmd_mps)
        except SimulatorError as exc:
            return self._sim_error_step(exc)
        if reset_idx is not None:
            self._place_cars(reset_idx, None, {})
        if self.race_objects is not None:
            self._collide_objects()
        if self.keep_trails:
            for i in range(self.num_cars):
                point = (float(st.x_m[i]), float(st.y_m[i]), float(st.speed_mps[i]))
                if reset_idx is not None and i in reset_idx:
                    self.trails[i] = [point]
                else:
                    self.trails[i].append(point)
        self._speed_sum_mps += st.speed_mps
        if reset_idx is not None:
            self._speed_sum_mps[reset_idx] = 0.0
        if self._one_track is not None:  # every car on one track: projection, episode and params in one compiled call
            ep = self._update_one_track(steering_deg, resetting if reset_idx is not None else None)
        else:
            proj = self._project(self._everyone)
            ep = self.tracker.step(proj["s_m"], self._length_m, st.x_m, st.y_m, st.yaw_rad, proj["heading_rad"], proj["wheels_on"],
                                   st.time_s, st.is_crashed, resetting=None if reset_idx is None else resetting)
            self._update_params(slice(None), proj, ep.progress, ep.all_wheels_on_track, ep.off_track, steering_deg=steering_deg)
        reward, components = self._rewards(reset_idx)
        if reset_idx is not None:
            reward[reset_idx] = 0.0
        self.last_reward = reward
        obs = self.observation_type.observe(self, self._everyone, reset=False if reset_idx is None else resetting)
        return obs, reward, ep.terminated, ep.truncated, self._step_infos(ep, components, reset_idx)

    def _update_one_track(self, steering_deg: np.ndarray, resetting: np.ndarray | None) -> EpisodeStep:
        """Project every car onto the one driving track, step the episodes and write the params: one kernel call."""
        st, tracker = self.states, self.tracker
        laps_done = _race_update(self._everyone, st.x_m, st.y_m, st.yaw_rad, st.speed_mps, st.wheel_positions_m, st.time_s,
                                 st.is_crashed, self._one_track.race_projection_tables(), self._nearest_hint, self._proj_buffers,
                                 tracker.reset_mask(resetting), tracker.kernel_state(), tracker.kernel_settings(),
                                 tracker.kernel_outputs(), steering_deg, self._length_m, self._clockwise,
                                 self._param_f, self._param_b, self._param_i)
        return tracker.finish_step(laps_done, resetting)

    def _project(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Each car of idx and its four wheels projected onto its driving track: per-car (k,) fields, wheels_on (k, 4)."""
        k = len(idx)
        out = {"s_m": np.empty(k), "distance_from_center_m": np.empty(k), "half_width_m": np.empty(k),
               "is_left_of_center": np.empty(k, dtype=bool), "heading_rad": np.empty(k),
               "closest_waypoints": np.empty((k, 2), dtype=np.int64), "waypoint_direction_rad": np.empty(k),
               "wheels_on": np.empty((k, 4), dtype=bool)}
        st = self.states
        fields = (out["s_m"], out["distance_from_center_m"], out["half_width_m"], out["is_left_of_center"], out["heading_rad"],
                  out["closest_waypoints"], out["waypoint_direction_rad"], out["wheels_on"])
        groups = self.groups_by_track(idx)
        if len(groups) == 1:
            project_race(idx, st.x_m, st.y_m, st.wheel_positions_m, *groups[0][0].race_projection_tables(), self._nearest_hint, *fields)
            return out
        for track, rows in groups:
            part = [np.empty((len(rows),) + f.shape[1:], dtype=f.dtype) for f in fields]
            project_race(idx[rows], st.x_m, st.y_m, st.wheel_positions_m, *track.race_projection_tables(), self._nearest_hint, *part)
            for f, values in zip(fields, part, strict=True):
                f[rows] = values
        return out

    def _update_params(self, idx: np.ndarray | slice, proj: dict[str, np.ndarray], progress: np.ndarray, all_on: np.ndarray,
                       off_track: np.ndarray, steering_deg: np.ndarray | None = None) -> None:
        """DeepRacer's reward params of cars idx (all but waypoints and the object lists), in one compiled call."""
        rows = self._everyone if isinstance(idx, slice) else idx
        st = self.states
        steering = np.zeros(len(rows)) if steering_deg is None else steering_deg
        _write_params(rows, st.x_m, st.y_m, st.yaw_rad, st.speed_mps, st.is_crashed, proj["s_m"], proj["distance_from_center_m"],
                      proj["half_width_m"], proj["is_left_of_center"], proj["closest_waypoints"], proj["waypoint_direction_rad"],
                      np.asarray(progress, dtype=np.float64), all_on, off_track, self.tracker.steps, steering, self._length_m,
                      self._clockwise, self._param_f, self._param_b, self._param_i)

    def info_params(self) -> dict[str, np.ndarray]:
        """A copy of every car's params (N,) arrays, as an info carries them (three block copies; in a race, the object params)."""
        p = _param_views(self._param_f.copy(), self._param_b.copy(), self._param_i.copy(), with_direction=False)
        o = self.object_params()
        if o is not None:  # (N, ...) arrays made fresh each step: gymnasium's per-car split hands each car its rows
            p.update(closest_objects=o.closest_objects, objects_location=o.objects_location_m, objects_left_of_center=o.objects_left_of_center,
                     objects_speed=o.objects_speed_mps, objects_heading=o.objects_heading_deg, objects_distance=o.objects_distance_m,
                     objects_distance_from_center=o.objects_distance_from_center_m, object_in_camera=o.object_in_camera)
        return p

    def car_params(self, i: int, waypoints: bool = False) -> dict[str, Any]:
        """DeepRacer's params dict of car i with Python values (waypoints only when asked)."""
        p = self.params
        out = {key: p[key][i].item() for key in ("all_wheels_on_track", "x", "y", "heading", "distance_from_center",
                                                  "is_left_of_center", "progress", "steps", "speed", "steering_angle",
                                                  "track_width", "track_length")}
        out["closest_waypoints"] = p["closest_waypoints"][i].tolist()
        for key in ("is_reversed", "is_crashed", "is_offtrack"):
            out[key] = bool(p[key][i])
        objects = self.object_params()
        if objects is None:
            for key in _EMPTY_OBJECT_KEYS:
                out[key] = []
        else:
            out.update(objects.car_dict(i))
        out["projection_distance"] = float(p["projection_distance"][i])
        if waypoints:
            out["waypoints"] = _waypoints_list(self.driving_tracks[i])
        return out

    def _with_waypoints(self, track_reward: Any, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """A built-in that needs each car's track, called with the cars' waypoints lists."""
        return track_reward(params, self._waypoints_per_car())

    def _waypoints_per_car(self) -> list[list[list[float]]]:
        """Each car's driving track's waypoints as DeepRacer's list, one list object per track (cached on it)."""
        return [_waypoints_list(track) for track in self.driving_tracks]

    def _rewards(self, skip: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Rewards (N,) and their components; built-ins over arrays, a user file once per car (not for cars in `skip`)."""
        if self.user_reward is None:
            try:
                components = {k: _column(v, self.num_cars) for k, v in self._builtin_reward(self.params).items()}
            except Exception as exc:
                raise RewardFunctionError(f"reward function raised {type(exc).__name__}: {exc} at step {self.tracker.steps.tolist()}") from exc
            values = list(components.values())
            total = values[0] + values[1] if len(values) == 2 else np.add.reduce(values) if values else np.zeros(self.num_cars)
            total = np.array(total, dtype=np.float64)  # a fresh, writable array
            if not np.isfinite(total).all():
                if skip is not None:
                    total[skip] = 0.0
                bad = ~np.isfinite(total)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise RewardFunctionError(f"reward function returned non-finite {total[i]} at step {int(self.tracker.steps[i])} "
                                              f"(components { {k: float(v[i]) for k, v in components.items()} })")
            return total, components
        totals = np.zeros(self.num_cars)
        values = np.zeros(self.num_cars)
        skipped = set() if skip is None else set(skip.tolist())
        for i in range(self.num_cars):
            if i in skipped:  # a car starting a new episode has no step to reward
                continue
            totals[i], comp = evaluate_reward(self.user_reward, self.car_params(i, waypoints=True), int(self.tracker.steps[i]))
            values[i] = comp.get("reward_function", totals[i])
        return totals, {"reward_function": values}

    def _step_infos(self, ep: EpisodeStep, components: dict[str, np.ndarray], reset_idx: np.ndarray | None = None) -> dict[str, Any]:
        """The batched info of a step in gymnasium's vector format (arrays and their `_key` masks).

        Cars in reset_idx carry their reset info instead: params, episode_status, track and direction.
        """
        if self.lean_infos:
            return self._lean_step_infos(ep, reset_idx)
        st = self.states
        n = self.num_cars
        every = np.ones(n, dtype=bool)
        stepped = every
        if reset_idx is not None:
            stepped = every.copy()
            stepped[reset_idx] = False
        p = self.info_params()
        infos: dict[str, Any] = {
            "params": p, "_params": every,
            "episode_status": STATUS_NAMES[ep.status], "_episode_status": every,
            "steering_deg": self.steering_cmd_deg.copy(), "_steering_deg": stepped,
            "speed_cmd_mps": self.speed_cmd_mps.copy(), "_speed_cmd_mps": stepped,
            "action_index": self.action_index.copy(), "_action_index": stepped,
            "sim_time_s": st.time_s.copy(), "_sim_time_s": stepped,
            "reward_components": {k: np.array(v) for k, v in components.items()}, "_reward_components": stepped,
            "laps_completed": self.tracker.laps_completed.copy(), "_laps_completed": stepped,
            "vehicle": {"speed_mps": st.speed_mps.copy(), "steering_deg": np.degrees(st.steering_rad), "yaw_deg": np.degrees(st.yaw_rad)},
            "_vehicle": stepped,
            "lap_time_s": ep.lap_time_s, "_lap_time_s": ep.lap_complete,
        }
        if ep.truncated.any():
            infos["truncated_reason"] = np.where(ep.truncated, "max_episode_steps", "").astype(object)
            infos["_truncated_reason"] = ep.truncated.copy()
        if reset_idx is not None:
            track, direction = np.empty(n, dtype=object), np.empty(n, dtype=object)
            track[reset_idx] = [self.tracks[i].name for i in reset_idx.tolist()]
            direction[reset_idx] = [self.directions[i] for i in reset_idx.tolist()]
            infos["track"], infos["_track"] = track, ~stepped
            infos["direction"], infos["_direction"] = direction, ~stepped
        return infos

    def _lean_step_infos(self, ep: EpisodeStep, reset_idx: np.ndarray | None) -> dict[str, Any]:
        """Lean infos (env_config.infos: lean): lap_time_s on a car's lap steps; on its last step params,
        episode_status, laps_completed and episode_speed_mps_mean; track and direction when it resets. Else nothing."""
        infos: dict[str, Any] = {}
        if ep.lap_complete.any():
            infos["lap_time_s"], infos["_lap_time_s"] = ep.lap_time_s, ep.lap_complete
        done = ep.terminated | ep.truncated
        if done.any():
            infos.update({"params": self.info_params(), "_params": done,
                          "episode_status": STATUS_NAMES[ep.status], "_episode_status": done,
                          "laps_completed": self.tracker.laps_completed.copy(), "_laps_completed": done,
                          "episode_speed_mps_mean": self._speed_sum_mps / np.maximum(self.tracker.steps, 1),
                          "_episode_speed_mps_mean": done,
                          "episode_lap_times_s": _object_array([list(t) for t in self.tracker.lap_times_s]),
                          "_episode_lap_times_s": done})
            if ep.truncated.any():
                infos["truncated_reason"] = np.where(ep.truncated, "max_episode_steps", "").astype(object)
                infos["_truncated_reason"] = ep.truncated.copy()
        if reset_idx is not None:
            n = self.num_cars
            resets = np.zeros(n, dtype=bool)
            resets[reset_idx] = True
            track, direction = np.empty(n, dtype=object), np.empty(n, dtype=object)
            track[reset_idx] = [self.tracks[i].name for i in reset_idx.tolist()]
            direction[reset_idx] = [self.directions[i] for i in reset_idx.tolist()]
            infos.update({"track": track, "_track": resets, "direction": direction, "_direction": resets})
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
            "params": self.info_params(),
            "episode_status": STATUS_NAMES[np.full(n, STATUS["sim_error"])],
            "truncated_reason": np.array([f"simulator error: {exc}"] * n, dtype=object),
            "_truncated_reason": np.ones(n, dtype=bool),
            "steering_deg": self.steering_cmd_deg.copy(), "speed_cmd_mps": self.speed_cmd_mps.copy(),
            "action_index": self.action_index.copy(), "sim_time_s": self.states.time_s.copy(),
            "reward_components": {}, "laps_completed": self.tracker.laps_completed.copy(),
        }
        every = np.ones(n, dtype=bool)
        infos.update({f"_{key}": every for key in list(infos) if f"_{key}" not in infos and not key.startswith("_")})
        return obs, np.zeros(n), np.zeros(n, dtype=bool), np.ones(n, dtype=bool), infos

    def close(self) -> None:
        """Release the backend."""
        if self.sim is not None:
            self.sim.close()
            self.sim = None


_FLOAT_PARAMS = ("x", "y", "heading", "distance_from_center", "progress", "speed", "steering_angle", "track_width", "track_length",
                 "projection_distance", "waypoint_direction_rad")
_BOOL_PARAMS = ("all_wheels_on_track", "is_left_of_center", "is_reversed", "is_crashed", "is_offtrack")


def _param_views(floats: np.ndarray, bools: np.ndarray, ints: np.ndarray, with_direction: bool) -> dict[str, np.ndarray]:
    """The params dict over the three blocks: one (N,) view per name, closest_waypoints (N, 2)."""
    names = _FLOAT_PARAMS if with_direction else _FLOAT_PARAMS[:-1]  # waypoint_direction_rad: for the built-in rewards only
    out = {name: floats[k] for k, name in enumerate(names)}
    out.update({name: bools[k] for k, name in enumerate(_BOOL_PARAMS)})
    out["steps"] = ints[0]
    # The race's own params: an (N, 2) view; an info's: one [behind, ahead] list per car, DeepRacer's type, so
    # gymnasium's per-car split (RLlib's DictInfoToList) hands callbacks what a one-car env gives them.
    out["closest_waypoints"] = ints[1:3].T if with_direction else _waypoint_lists(ints[1:3].T)
    return out


def _object_array(items: list[Any]) -> np.ndarray:
    """(N,) object array holding one Python object per car (np.array would make lists a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):  # element-wise: a slice assignment would read equal-length lists as a 2-D array
        out[i] = item
    return out


def _waypoint_lists(closest: np.ndarray) -> np.ndarray:
    """(N,) object array of [behind, ahead] lists from an (N, 2) int array."""
    return np.fromiter(closest.tolist(), dtype=object, count=len(closest))


@numba.njit(cache=True)
def _write_params(rows, x, y, yaw, speed, crashed, s_m, dist, half_width, left, closest, wp_direction, progress, all_on,
                  off_track, steps, steering_deg, length_m, clockwise, pf, pb, pi):  # pragma: no cover - compiled
    """Params of cars rows[j] from their state (by car) and this step's projection and episode results (by j).

    Rows follow _FLOAT_PARAMS and _BOOL_PARAMS. The speed is the car's measured speed, not the action's target
    (a reward on the commanded speed can be gamed: command fast, drive slowly); steering is the action's, as in DeepRacer.
    """
    tau = 2.0 * math.pi
    for j in range(rows.shape[0]):
        c = rows[j]
        pf[0, c], pf[1, c] = x[c], y[c]
        pf[2, c] = (yaw[c] - tau * np.rint(yaw[c] / tau)) * (180.0 / math.pi)
        pf[3, c], pf[4, c], pf[5, c], pf[6, c] = dist[j], progress[j], speed[c], steering_deg[j]
        pf[7, c], pf[8, c], pf[9, c], pf[10, c] = 2 * half_width[j], length_m[c], s_m[j], wp_direction[j]
        pb[0, c], pb[1, c], pb[2, c], pb[3, c], pb[4, c] = all_on[j], left[j], clockwise[c], crashed[c], off_track[j]
        pi[0, c], pi[1, c], pi[2, c] = steps[c], closest[j, 0], closest[j, 1]


@numba.njit(cache=True)
def _race_update(rows, x, y, yaw, speed, wheels, time_s, crashed, tables, hint, proj, resetting, state, settings, outputs,
                 steering_deg, length_m, clockwise, pf, pb, pi):  # pragma: no cover - compiled
    """project_race + the episode step + the params of every car (rows == 0..N-1), in one call; returns laps completed."""
    project_race(rows, x, y, wheels, tables[0], tables[1], tables[2], tables[3], tables[4], tables[5], tables[6], tables[7],
                 tables[8], tables[9], tables[10], tables[11], tables[12], tables[13], tables[14], tables[15], tables[16],
                 tables[17], tables[18], tables[19], tables[20], hint,
                 proj[0], proj[1], proj[2], proj[3], proj[4], proj[5], proj[6], proj[7])
    laps_done = step_episodes(proj[0], length_m, x, y, yaw, proj[4], proj[7], time_s, crashed, resetting,
                              state[0], state[1], state[2], state[3], state[4], state[5], state[6], state[7], state[8], state[9],
                              settings[0], settings[1], settings[2], settings[3], settings[4], settings[5],
                              outputs[0], outputs[1], outputs[2], outputs[3], outputs[4], outputs[5], outputs[6])
    _write_params(rows, x, y, yaw, speed, crashed, proj[0], proj[1], proj[2], proj[3], proj[5], proj[6], state[6], outputs[2],
                  outputs[3], state[0], steering_deg, length_m, clockwise, pf, pb, pi)
    return laps_done


def _column(value: Any, n: int) -> np.ndarray:
    """A reward component as an (n,) float64 array (a scalar is broadcast)."""
    a = np.asarray(value, dtype=np.float64)
    return a if a.shape == (n,) else np.broadcast_to(a, (n,))


def _waypoints_list(track: Track) -> list[list[float]]:
    """The track's waypoints as DeepRacer's list, built once and kept on the track (one object per track)."""
    cached = track.__dict__.get("_waypoints_list")
    if cached is None:
        cached = track._waypoints_list = track.waypoints_list()
    return cached


def _builtin_names() -> tuple[str, ...]:
    from control.env.rewards import BUILTIN_REWARDS

    return (*BUILTIN_REWARDS, *TRACK_BUILTIN_REWARDS)
