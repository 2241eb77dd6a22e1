"""DeepRacer reward function that follows a precomputed racing line (paste-able into DeepRacer as is).

Make the line for your track first, then point the env's reward at this file:

    make -C control raceline TRACK=reInvent2019_track.npy ARGS="--out resources/rewards/racing_line.npy"
    # env_config: {reward: resources/rewards/racing_line_reward.py, track: ...}

The file shipped beside this one, racing_line.npy, is the line of the bundled `oval` track.
The line is DeepRacer's community race-line format: an (N, 2) array of x, y in metres (first
row repeated last), with the optimal speed in `<name>_speed.npy` beside it, or one (N, 3)
array x, y, speed. Like community reward functions, this file loads the line once at import;
set RACING_LINE_FILE to use another file. In the DeepRacer console, where a reward function
cannot read files, paste the arrays instead: `RACING_LINE = [[x, y, speed], ...]`.

The reward is 1 on the line at its speed: it falls linearly with the distance from the line
(0 at half the track width) and with the speed: (speed / line speed)**2 below the line's speed
(so a slow lap never earns more than a fast one), down by 1 per metre per second above it.
"""
import math
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LINE_FILE = os.environ.get("RACING_LINE_FILE", os.path.join(HERE, "racing_line.npy"))


def load_racing_line(path):
    """(N, 3) x, y, speed from an (N, 3) file, or an (N, 2) file and its _speed.npy; the closing row dropped."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"racing line file '{path}' does not exist; write one with "
                                "`make -C control raceline TRACK=<track> ARGS=\"--out {path}\"` or set RACING_LINE_FILE")
    line = np.load(path)
    if line.ndim != 2 or line.shape[1] not in (2, 3):
        raise ValueError(f"racing line file '{path}' has shape {line.shape}; expected (N, 2) x, y or (N, 3) x, y, speed")
    if line.shape[1] == 2:
        speed_path = path[:-4] + "_speed.npy"
        speed = np.load(speed_path) if os.path.isfile(speed_path) else np.full(len(line), 4.0)
        line = np.column_stack([line, speed])
    if np.allclose(line[0, :2], line[-1, :2]):
        line = line[:-1]
    return line.astype(float)


RACING_LINE = load_racing_line(LINE_FILE)


def reward_function(params):
    """DeepRacer's reward_function(params): closeness to the racing line times the speed match."""
    if params["is_offtrack"] or params["is_crashed"]:
        return 1e-3
    x, y, speed = params["x"], params["y"], params["speed"]
    start = RACING_LINE[:, :2]
    seg = np.roll(start, -1, axis=0) - start
    rel = np.array([x, y]) - start
    u = np.clip(np.einsum("ij,ij->i", rel, seg) / np.maximum(np.einsum("ij,ij->i", seg, seg), 1e-12), 0.0, 1.0)
    dist = np.hypot(rel[:, 0] - u * seg[:, 0], rel[:, 1] - u * seg[:, 1])
    i = int(np.argmin(dist))
    line_speed = RACING_LINE[i, 2] * (1 - u[i]) + RACING_LINE[(i + 1) % len(RACING_LINE), 2] * u[i]
    closeness = max(0.0, 1.0 - dist[i] / (0.5 * params["track_width"]))
    if speed <= line_speed:
        speed_score = (speed / max(line_speed, 1e-6)) ** 2
    else:
        speed_score = max(0.0, 1.0 - (speed - line_speed))
    reward = closeness * speed_score
    return float(reward) if math.isfinite(reward) else 1e-3
