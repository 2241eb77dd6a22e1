"""Record reference episodes of the one-car RacingEnv for tests/test_vector_env.py's equivalence test.

Produced once with the one-car env of commit 8c9ffc1 (before the batched core), so the batched
core is checked against what the old code did, not against itself:
    .venv/bin/python tests/data/make_reference_trajectories.py
Each case: a config, a seed, random actions (seeded), resets on termination; per step the
observation, reward, terminated, truncated, status, progress and pose are stored.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("reference_trajectories.npz")
STEPS = 250
CASES = {
    "vlidar_oval": {"track": "oval", "observation": {"type": "vlidar"}},
    "vlidar_hairpins": {"track": "hairpins", "observation": {"type": "vlidar"}, "reward": "center_line_speed"},
    "vlidar_speedway": {"track": "speedway", "observation": {"type": "vlidar", "num_rays": 16}, "reward": "progress_per_step"},
    "vlidar_speedway_cw_noise_discrete": {
        "track": "speedway", "action": {"type": "discrete"},
        "start": {"direction": "random", "lateral_noise_m": 0.2, "heading_noise_deg": 10.0},
    },
    "camera_oval": {"track": "oval", "observation": {"type": "camera", "width_px": 32, "height_px": 24}},
    "camera_hairpins_rgb": {"track": "hairpins", "observation": {"type": "camera", "width_px": 24, "height_px": 16, "rgb": True}},
    "camera_speedway": {"track": "speedway", "observation": {"type": "camera", "width_px": 32, "height_px": 24, "frame_stack": 2}},
    "immobilized_discrete_stop": {
        "track": "hairpins", "action": {"type": "discrete", "actions": [{"steering_angle": 0.0, "speed": 0.0}, {"steering_angle": 5.0, "speed": 0.0}]},
    },
    "both_oval_fast_termination": {
        "track": "oval", "max_episode_steps": 40,
        "observation": {"type": "both", "camera": {"width_px": 16, "height_px": 12}, "vlidar": {"num_rays": 8}},
    },
}


# Driven by a centerline follower (its actions are recorded and replayed): laps complete.
DRIVEN_CASES = {
    "driven_oval_two_laps": {"track": "oval", "start": {"mode": "fixed"}, "max_episode_steps": 2000, "termination": {"laps": 2}},
    "driven_hairpins_clockwise": {"track": "hairpins", "start": {"direction": "clockwise"}, "max_episode_steps": 2000},
}
DRIVEN_STEPS = 900


def centerline_action(env, speed_mps: float = 2.0) -> np.ndarray:
    """Steer towards a point 0.6 m ahead on the centerline at `speed_mps` (continuous [-30, 30] deg, [0.5, 4] m/s)."""
    import math

    v = env.vehicle
    s = env.driving_track.project(np.array([[v.x_m, v.y_m]])).s_m[0]
    (target,), _ = env.driving_track.point_at(s + 0.6)
    bearing = math.degrees(math.remainder(math.atan2(target[1] - v.y_m, target[0] - v.x_m) - v.yaw_rad, math.tau))
    return np.array([np.clip(bearing / 30.0, -1, 1), 2 * (speed_mps - 0.5) / 3.5 - 1], dtype=np.float32)


def record(config: dict, seed: int, driven: bool = False) -> dict[str, np.ndarray]:
    """One recorded run of STEPS steps of RacingEnv(config) from reset(seed)."""
    from control.env.racing_env import RacingEnv

    env = RacingEnv(config)
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(DRIVEN_STEPS if driven else STEPS)]
    obs, info = env.reset(seed=seed)
    rows = {k: [] for k in ("obs", "reward", "terminated", "truncated", "status", "progress", "x", "y", "speed", "lap_time_s")}
    reset_obs = [obs]
    for i, action in enumerate(actions):
        if driven:
            action = actions[i] = centerline_action(env)
        obs, reward, terminated, truncated, info = env.step(action)
        p = info["params"]
        for key, value in (("obs", obs), ("reward", reward), ("terminated", terminated), ("truncated", truncated),
                           ("status", info["episode_status"]), ("progress", p["progress"]), ("x", p["x"]),
                           ("y", p["y"]), ("speed", p["speed"]), ("lap_time_s", info.get("lap_time_s", np.nan))):
            rows[key].append(value)
        if terminated or truncated:
            obs, _ = env.reset()
            reset_obs.append(obs)
    out = {k: np.asarray(v) for k, v in rows.items() if k != "obs"}
    out["actions"] = np.asarray(actions)
    if isinstance(rows["obs"][0], dict):
        for key in rows["obs"][0]:
            out[f"obs_{key}"] = np.asarray([o[key] for o in rows["obs"]])
            out[f"reset_obs_{key}"] = np.asarray([o[key] for o in reset_obs])
    else:
        out["obs"] = np.asarray(rows["obs"])
        out["reset_obs"] = np.asarray(reset_obs)
    return out


def main() -> None:
    """Write every case to OUT."""
    arrays = {}
    for name, config in CASES.items():
        for seed in (0, 1):
            for key, value in record(config, seed).items():
                arrays[f"{name}/{seed}/{key}"] = value
    for name, config in DRIVEN_CASES.items():
        for key, value in record(config, 0, driven=True).items():
            arrays[f"{name}/0/{key}"] = value
    np.savez_compressed(OUT, **arrays)
    print(f"{OUT}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
