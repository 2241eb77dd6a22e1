"""RacingEnv: one car laps a closed track; the N = 1 view of the race core (`control/env/race.py`)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from control.env.config import validate_env_config
from control.env.race import RaceBatch
from control.env.race_state import RaceState
from control.sim.base import VehicleState
from control.track.track import Track

_CAR = np.zeros(1, dtype=np.intp)


def _python(value: Any) -> Any:
    """A numpy scalar or small array as a plain Python value."""
    return value.item() if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0) else value


def car_info(batched: Mapping[str, Any], j: int, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Car j's info dict (Python values) from a batched info: keys whose `_key` mask is False, and `skip`, are left out."""
    out: dict[str, Any] = {}
    for key, value in batched.items():
        if key.startswith("_") or key in skip:
            continue
        mask = batched.get(f"_{key}")
        if mask is not None and not mask[j]:
            continue
        if isinstance(value, Mapping):
            out[key] = {k: _python(v[j]) if not (isinstance(v, np.ndarray) and v.ndim > 1) else v[j].tolist() for k, v in value.items()}
        else:
            out[key] = _python(value[j])
    return out


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
        self.race = RaceBatch(self.config, 1, worker_index=self.worker_index, vector_index=self.vector_index,
                              is_evaluation=self.is_evaluation, keep_trails=True)
        self.observation_type = self.race.observation_type
        self.action_type = self.race.action_type
        self.observation_space = self.observation_type.space()
        self.action_space = self.action_type.space()
        self.params: dict[str, Any] = {}

    # ------------------------------------------------------------ public state
    @property
    def sim(self) -> Any:
        """The backend (built on the first reset)."""
        return self.race.sim

    @property
    def track(self) -> Track | None:
        """The track of the current episode (its waypoint order); before the first reset, the config's first track."""
        return self.race.tracks[0] or self.race.initial_track()

    @property
    def driving_track(self) -> Track | None:
        """The track in the driving direction."""
        return self.race.driving_tracks[0]

    @property
    def direction(self) -> str:
        """counter_clockwise or clockwise."""
        return self.race.directions[0]

    @property
    def vehicle(self) -> VehicleState | None:
        """The car's state (None before the first reset)."""
        return None if self.race.sim is None else self.race.states.car(0)

    @property
    def limits(self) -> Any:
        """The backend's VehicleLimits."""
        return self.race.limits

    @property
    def control_hz(self) -> float:
        """The backend's control rate."""
        return self.race.limits.control_hz

    @property
    def max_speed_mps(self) -> float:
        """The car's top speed (the backend's VehicleLimits)."""
        return self.race.limits.max_speed_mps

    @property
    def max_steering_rad(self) -> float:
        """The car's steering lock (the backend's VehicleLimits)."""
        return self.race.limits.max_steering_rad

    @property
    def trail(self) -> list[tuple[float, float, float]]:
        """(x_m, y_m, speed_mps) since reset, for render."""
        return self.race.trails[0]

    def race_state(self) -> RaceState:
        """The public race state render reads."""
        race = self.race
        lidar = getattr(self.observation_type, "vlidar", self.observation_type)
        has_lidar = hasattr(lidar, "angles_rad")
        has_camera = hasattr(self.observation_type, "channels") or hasattr(self.observation_type, "camera")
        vehicle = self.vehicle
        return RaceState(
            track=self.track, direction=self.direction, vehicle=vehicle, trail=self.trail, params=self.params,
            steering_cmd_deg=float(race.steering_cmd_deg[0]), speed_cmd_mps=float(race.speed_cmd_mps[0]),
            action_index=int(race.action_index[0]), reward=float(race.last_reward[0]),
            lap_elapsed_s=vehicle.time_s - float(race.tracker.lap_start_time_s[0]),
            laps_completed=int(race.tracker.laps_completed[0]), max_speed_mps=race.limits.max_speed_mps,
            lidar_angles_rad=lidar.angles_rad if has_lidar else None,
            lidar_distances_m=lidar.last_distances_m[0] if has_lidar else None,
            lidar_max_range_m=float(lidar.max_range_m) if has_lidar else 0.0,
            camera_image=self._camera_panel_image() if has_camera else None,
            object_rectangles=None if race.race_objects is None else np.stack(race.race_objects.rectangles(), axis=-1)[0],
            objects_are_bots=race.race_config.type == "head_to_bot",
            lidar_name=getattr(lidar, "display_name", "virtual lidar"),
        )

    def _camera_panel_image(self) -> np.ndarray:
        """The camera frame the policy last saw (race objects, lens jitter and looks included), else the backend's."""
        camera = self.observation_type if hasattr(self.observation_type, "channels") else self.observation_type.camera
        frame = camera.frame_of(0)
        return self.race.sim.camera_images(_CAR)[0] if frame is None else frame

    # --------------------------------------------------------------------- api
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        obs, infos = self.race.reset_cars(_CAR, [seed], options)
        self._np_random = self.race.rngs[0]  # the car's generator is the env's: all randomness from self.np_random
        self.params = self.race.car_params(0)
        info = car_info(infos, 0)
        info["params"] = self.params
        return _first(obs), info

    def recover_to_track(self, behind_m: float = 0.0) -> Any:
        """Put the car back on the centerline at its nearest point (or behind_m back), at rest, facing the driving direction.

        DeepRacer's continuous evaluation: the episode goes on after going off track; lap progress, steps
        and the lap timer carry over. Returns the new observation.
        """
        obs = self.race.recover_car(0, behind_m)
        self.params = self.race.car_params(0)
        return _first(obs)

    @property
    def last_command(self) -> tuple[float, float, int]:
        """(steering_deg, speed_cmd_mps, action_index) of the latest step."""
        r = self.race
        return float(r.steering_cmd_deg[0]), float(r.speed_cmd_mps[0]), int(r.action_index[0])

    @property
    def last_reward(self) -> float:
        """The latest step's reward."""
        return float(self.race.last_reward[0])

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, terminated, truncated, infos = self.race.step(np.asarray(action)[None])
        self.params = self.race.car_params(0)
        info = car_info(infos, 0, skip=("params",))  # the car's own params dict replaces the batched one
        if self.race.lean_infos:  # lean: the params only where the batched info has them (the episode's last step)
            if "params" in infos and infos["_params"][0]:
                info["params"] = self.params
            return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info
        info["params"] = self.params
        if "vehicle" in info:
            info["vehicle"] = {k: float(v) for k, v in info["vehicle"].items()}
        info["reward_components"] = {k: float(v) for k, v in info.get("reward_components", {}).items()}
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        from control.env.render import render_frame

        return render_frame(self.race_state())

    def close(self) -> None:
        self.race.close()


def _first(obs: Any) -> Any:
    """Car 0's observation from a batched one."""
    return {k: v[0] for k, v in obs.items()} if isinstance(obs, dict) else obs[0]

