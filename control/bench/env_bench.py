"""Environment throughput benchmark: env steps/s of our envs next to a peer env from PyPI.

Random actions, `env.step` timed alone: resets are timed and reported separately, and the
actions are sampled before the clock starts, so both sides pay for the same thing.
Our envs: the vlidar env (32 rays) and the camera env (160×120 gray) on the largest bundled
track, as the one-car `RacingEnv` and as the batched `RacingVectorEnv` for N = 1, 8, 16, 64, 256
cars (env steps/s = N × batch steps/s; its NEXT_STEP autoresets happen inside `step` and are
counted). The race types next to the time trial: vlidar with 6 boxes (object_avoidance, random
placement) and with 3 bots (head_to_bot, lane changes on) at N = 16 and 64, built-in reward, and
what the objects cost of the time trial's throughput against issue 12's 30 % limit. A user
reward file (DeepRacer's `reward_function(params)`, called once per car) is
measured apart: its extra cost per env step. Peer: highway-env `racetrack-v0` with its
LidarObservation and GrayscaleObservation (pinned in requirements-bench.txt); it is skipped with
a message when not installed. Every rate is given twice: wall clock, and per CPU second of this
process (`time.process_time`), steadier on a machine others share.
"""
from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from control.sim.base import CameraSpec

ACTION_POOL_SIZE = 1024  # pre-sampled random actions, cycled through during the run
BATCH_SIZES = (1, 8, 16, 64, 256)  # cars per RacingVectorEnv in the batched table
RACE_BATCH_SIZES = (16, 64)  # cars per RacingVectorEnv of the race-type rows
# env_config.race of the race-type rows: the race configs' objects (shipped defaults), the env's built-in reward.
BENCH_RACES = {
    "object_avoidance": ("6 obstacles", {"type": "object_avoidance", "num_obstacles": 6, "randomize_each_episode": True}),
    "head_to_bot": ("3 bots", {"type": "head_to_bot", "num_bots": 3, "bot_speed_mps": 1.0, "lane_changes": True}),
}
RACE_COST_LIMIT = 0.30  # issue 12: objects may cost at most 30 % of the time-trial throughput
USER_REWARD_CARS = 64  # cars of the user-reward-file measurement
# A DeepRacer reward file as users write them (the console's example 1), for the per-car cost of the dict API.
USER_REWARD_SOURCE = """
def reward_function(params):
    width = params["track_width"]
    distance = params["distance_from_center"]
    if distance <= 0.1 * width:
        return 1.0
    if distance <= 0.25 * width:
        return 0.5
    if distance <= 0.5 * width:
        return 0.1
    return 1e-3
"""
NUM_RAYS = 32
CAMERA_WIDTH_PX, CAMERA_HEIGHT_PX = CameraSpec.width_px, CameraSpec.height_px  # DeepRacer's 160x120, the camera's default
PEER_INSTALL_HINT = "pip install -r requirements-bench.txt"


@dataclass
class EnvBenchResult:
    """Throughput of one env: step time without resets, resets timed on their own."""

    name: str
    kind: str  # "lidar" or "camera": which figures are compared as a ratio
    observation_shape: tuple[int, ...]
    steps: int
    step_time_s: float  # wall time inside env.step
    resets: int
    reset_time_s: float  # wall time inside env.reset
    step_cpu_time_s: float = float("nan")  # this process's CPU time over the steps (loop included, resets not)

    @property
    def steps_per_s(self) -> float:
        """Env steps per second, resets excluded."""
        return self.steps / self.step_time_s if self.step_time_s > 0 else float("nan")

    @property
    def cpu_steps_per_s(self) -> float:
        """Env steps per CPU second of this process: steadier than wall time on a busy machine."""
        return self.steps / self.step_cpu_time_s if self.step_cpu_time_s > 0 else float("nan")

    @property
    def mean_reset_ms(self) -> float:
        """Mean wall time of one reset, ms."""
        return 1000.0 * self.reset_time_s / self.resets if self.resets else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the derived rates."""
        return {**asdict(self), "steps_per_s": self.steps_per_s, "cpu_steps_per_s": self.cpu_steps_per_s, "mean_reset_ms": self.mean_reset_ms}


@dataclass
class EnvSpec:
    """How to build one benchmarked env."""

    name: str
    kind: str
    make: Callable[[], gym.Env]


@dataclass
class PeerStatus:
    """The peer envs, or why they cannot run here."""

    specs: list[EnvSpec] = field(default_factory=list)
    skipped_reason: str | None = None


def measure_env(spec: EnvSpec, max_steps: int, max_seconds: float, seed: int = 0, warmup_steps: int = 20) -> EnvBenchResult:
    """Step `spec`'s env with random actions until max_steps or max_seconds of step time."""
    env = spec.make()
    try:
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(ACTION_POOL_SIZE)]
        env.reset(seed=seed)
        # Warm-up: first-call costs (camera texture rasterised lazily, caches) are not throughput.
        for i in range(warmup_steps):
            _, _, terminated, truncated, _ = env.step(actions[i % ACTION_POOL_SIZE])
            if terminated or truncated:
                env.reset()
        env.reset(seed=seed + 1)
        clock, cpu_clock = time.perf_counter, time.process_time
        steps = resets = 0
        step_time_s = reset_time_s = reset_cpu_s = 0.0
        cpu_start = cpu_clock()
        while steps < max_steps and step_time_s < max_seconds:
            action = actions[steps % ACTION_POOL_SIZE]
            t0 = clock()
            obs, _, terminated, truncated, _ = env.step(action)
            step_time_s += clock() - t0
            steps += 1
            if terminated or truncated:
                c0, t0 = cpu_clock(), clock()
                obs, _ = env.reset()
                reset_time_s += clock() - t0
                reset_cpu_s += cpu_clock() - c0
                resets += 1
        step_cpu_s = cpu_clock() - cpu_start - reset_cpu_s
        shape = tuple(np.asarray(obs).shape) if not isinstance(obs, dict) else ()
        return EnvBenchResult(spec.name, spec.kind, shape, steps, step_time_s, resets, reset_time_s, step_cpu_s)
    finally:
        env.close()


@dataclass
class VectorBenchResult:
    """Throughput of one RacingVectorEnv of N cars: env steps (N per batch step), autoresets included."""

    name: str
    num_envs: int
    env_steps: int
    wall_s: float
    cpu_s: float

    @property
    def steps_per_s(self) -> float:
        """Env steps per wall-clock second."""
        return self.env_steps / self.wall_s if self.wall_s > 0 else float("nan")

    @property
    def cpu_steps_per_s(self) -> float:
        """Env steps per CPU second of this process."""
        return self.env_steps / self.cpu_s if self.cpu_s > 0 else float("nan")

    @property
    def batch_step_ms(self) -> float:
        """Wall time of one batch step (all N cars), ms."""
        return 1000.0 * self.wall_s * self.num_envs / self.env_steps if self.env_steps else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the derived rates."""
        return {**asdict(self), "steps_per_s": self.steps_per_s, "cpu_steps_per_s": self.cpu_steps_per_s, "batch_step_ms": self.batch_step_ms}


def measure_vector_env(name: str, config: dict[str, Any], num_envs: int, max_env_steps: int, max_seconds: float,
                       seed: int = 0, warmup_steps: int = 5) -> VectorBenchResult:
    """Step a RacingVectorEnv of num_envs cars with random actions until max_env_steps or max_seconds (at least one step)."""
    from control.env.vector_env import RacingVectorEnv

    env = RacingVectorEnv(config, num_envs=num_envs)
    try:
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(min(ACTION_POOL_SIZE, 64))]
        env.reset(seed=seed)
        for i in range(warmup_steps):  # first calls: compiled kernels loaded, camera texture rasterised
            env.step(actions[i % len(actions)])
        batch_steps, wall_s = 0, 0.0
        clock, cpu_clock = time.perf_counter, time.process_time
        cpu_start = cpu_clock()
        while batch_steps == 0 or (batch_steps * num_envs < max_env_steps and wall_s < max_seconds):
            action = actions[batch_steps % len(actions)]
            t0 = clock()
            env.step(action)
            wall_s += clock() - t0
            batch_steps += 1
        return VectorBenchResult(name, num_envs, batch_steps * num_envs, wall_s, cpu_clock() - cpu_start)
    finally:
        env.close()


def vector_env_configs(track: str) -> dict[str, dict[str, Any]]:
    """The batched table's envs: vlidar (32 rays; full and lean infos) and camera (160×120 gray) on `track`."""
    return {
        f"vlidar {NUM_RAYS} rays": {"track": track, "observation": {"type": "vlidar", "num_rays": NUM_RAYS}},
        # What ppo_train.py's env runners step: lean infos (env_config.infos auto -> lean without --state_log).
        f"vlidar {NUM_RAYS} rays, lean infos": {"track": track, "observation": {"type": "vlidar", "num_rays": NUM_RAYS}, "infos": "lean"},
        f"camera {CAMERA_WIDTH_PX}x{CAMERA_HEIGHT_PX} gray": {
            "track": track, "observation": {"type": "camera", "width_px": CAMERA_WIDTH_PX, "height_px": CAMERA_HEIGHT_PX, "rgb": False}},
    }


def race_vector_configs(track: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The race-type rows' envs: row name -> (race type, the time-trial vlidar config with that race's objects)."""
    base = vector_env_configs(track)[f"vlidar {NUM_RAYS} rays"]
    return {f"vlidar {NUM_RAYS} rays, {label}": (race, {**base, "race": section}) for race, (label, section) in BENCH_RACES.items()}


@dataclass(frozen=True)
class RaceCost:
    """What one race type's objects cost of the time trial's throughput at one N."""

    race: str
    num_envs: int
    time_trial_steps_per_s: float
    race_steps_per_s: float
    time_trial_cpu_steps_per_s: float
    race_cpu_steps_per_s: float

    @property
    def cost_fraction(self) -> float:
        """Share of the time trial's wall-clock steps/s the objects take away (0.2: 20 % fewer steps/s)."""
        return 1.0 - self.race_steps_per_s / self.time_trial_steps_per_s

    @property
    def cpu_cost_fraction(self) -> float:
        """The same per CPU second of this process (steadier on a shared machine)."""
        return 1.0 - self.race_cpu_steps_per_s / self.time_trial_cpu_steps_per_s

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the cost fractions."""
        return {**asdict(self), "cost_fraction": self.cost_fraction, "cpu_cost_fraction": self.cpu_cost_fraction,
                "met": self.cost_fraction <= RACE_COST_LIMIT}


def race_costs(time_trial_rows: list[VectorBenchResult], race_rows: dict[str, list[VectorBenchResult]]) -> list[RaceCost]:
    """The objects' cost per race type and N: each race row against the time-trial row of the same N."""
    baseline = {r.num_envs: r for r in time_trial_rows}
    return [RaceCost(race, r.num_envs, baseline[r.num_envs].steps_per_s, r.steps_per_s, baseline[r.num_envs].cpu_steps_per_s,
                     r.cpu_steps_per_s)
            for race, rows in race_rows.items() for r in rows if r.num_envs in baseline]


def format_race_costs(costs: list[RaceCost]) -> str:
    """One line per race type: the objects' cost at every N against the limit, met only when every N is within it."""
    lines = []
    for race in dict.fromkeys(c.race for c in costs):
        mine = [c for c in costs if c.race == race]
        per_n = ", ".join(f"{100 * c.cost_fraction:.0f} % at N={c.num_envs} (cpu {100 * c.cpu_cost_fraction:.0f} %)" for c in mine)
        verdict = "met" if all(c.cost_fraction <= RACE_COST_LIMIT for c in mine) else "NOT met"
        lines.append(f"{race} ({BENCH_RACES[race][0]}): objects cost {per_n} of time-trial throughput "
                     f"(limit {100 * RACE_COST_LIMIT:.0f} %): {verdict}")
    return "\n".join(lines)


def measure_user_reward_cost(track: str, max_env_steps: int, max_seconds: float, reward_dir: str, seed: int = 0) -> dict[str, Any]:
    """Env steps/s of the vlidar vector env with a built-in reward and with a user reward file; the file's extra µs per env step."""
    from pathlib import Path

    path = Path(reward_dir) / "bench_reward.py"
    path.write_text(USER_REWARD_SOURCE)
    config = vector_env_configs(track)[f"vlidar {NUM_RAYS} rays"]
    builtin = measure_vector_env("builtin follow_center_line", {**config, "reward": "follow_center_line"}, USER_REWARD_CARS,
                                 max_env_steps, max_seconds, seed)
    user = measure_vector_env("user reward file", {**config, "reward": str(path)}, USER_REWARD_CARS, max_env_steps, max_seconds, seed)
    return {
        "num_envs": USER_REWARD_CARS,
        "builtin": builtin.as_dict(),
        "user_file": user.as_dict(),
        "extra_us_per_env_step": 1e6 * (1 / user.steps_per_s - 1 / builtin.steps_per_s),
        "extra_cpu_us_per_env_step": 1e6 * (1 / user.cpu_steps_per_s - 1 / builtin.cpu_steps_per_s),
    }


def format_vector_table(rows: list[VectorBenchResult], user_reward: dict[str, Any] | None, costs: list[RaceCost] | None = None) -> str:
    """steps/s against N per env, the race types' cost lines, and the user reward file's per-step cost."""
    header = f"{'env (RacingVectorEnv)':<32} {'N':>4} {'env steps':>9} {'steps/s':>10} {'cpu st/s':>10} {'batch ms':>9}"
    lines = ["Batched env throughput (random actions; env steps = N x batch steps, autoresets included; "
             "steps/s: wall clock, cpu st/s: per CPU second of this process)", header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<32} {r.num_envs:>4} {r.env_steps:>9} {r.steps_per_s:>10,.0f} {r.cpu_steps_per_s:>10,.0f} {r.batch_step_ms:>9.3f}")
    if costs:
        lines.append(format_race_costs(costs))
    if user_reward:
        lines.append(f"user reward file (DeepRacer dict, once per car), N={user_reward['num_envs']}: "
                     f"{user_reward['user_file']['steps_per_s']:,.0f} steps/s vs {user_reward['builtin']['steps_per_s']:,.0f} built-in; "
                     f"+{user_reward['extra_us_per_env_step']:.1f} µs per env step (cpu +{user_reward['extra_cpu_us_per_env_step']:.1f} µs)")
    return "\n".join(lines)


def largest_bundled_track() -> str:
    """Name of the longest bundled track."""
    from control.track.track import Track, bundled_track_names

    return max(bundled_track_names(), key=lambda name: Track.load(name).length_m)


def our_env_specs(track: str) -> list[EnvSpec]:
    """The vlidar env (32 rays) and the camera env (160×120 gray) on `track`."""
    from control.env.racing_env import RacingEnv

    vlidar = {"type": "vlidar", "num_rays": NUM_RAYS}
    camera = {"type": "camera", "width_px": CAMERA_WIDTH_PX, "height_px": CAMERA_HEIGHT_PX, "rgb": False}
    return [
        EnvSpec(f"RacerVLidar-v0 ({track}, {NUM_RAYS} rays)", "lidar", lambda: RacingEnv({"track": track, "observation": vlidar})),
        EnvSpec(
            f"RacerCamera-v0 ({track}, {CAMERA_WIDTH_PX}x{CAMERA_HEIGHT_PX} gray)",
            "camera",
            lambda: RacingEnv({"track": track, "observation": camera}),
        ),
    ]


def peer_env_specs() -> PeerStatus:
    """highway-env racetrack-v0 with lidar and with grayscale observations, if highway-env is installed."""
    # pygame's "dummy" video driver renders blank frames; "offscreen" renders real ones.
    # Set before pygame is first imported, or it has no effect.
    os.environ["SDL_VIDEODRIVER"] = "offscreen"
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import highway_env
    except ImportError as exc:
        return PeerStatus(skipped_reason=f"peer comparison skipped: highway-env is not importable ({exc}); install it with `{PEER_INSTALL_HINT}`")
    gym.register_envs(highway_env)
    from control.sim.camera import GRAY_WEIGHTS

    version = getattr(highway_env, "__version__", None) or _dist_version("highway-env")
    lidar = {"observation": {"type": "LidarObservation"}}
    gray = {
        "observation": {
            "type": "GrayscaleObservation",
            "observation_shape": (CAMERA_WIDTH_PX, CAMERA_HEIGHT_PX),  # (width, height)
            "stack_size": 1,
            "weights": GRAY_WEIGHTS.tolist(),  # the same luma as our camera's gray frames
        },
        "screen_width": CAMERA_WIDTH_PX,
        "screen_height": CAMERA_HEIGHT_PX,
    }
    return PeerStatus(
        specs=[
            EnvSpec(f"highway-env {version} racetrack-v0 Lidar", "lidar", lambda: _make_peer("racetrack-v0", lidar)),
            EnvSpec(
                f"highway-env {version} racetrack-v0 Grayscale {CAMERA_WIDTH_PX}x{CAMERA_HEIGHT_PX}",
                "camera",
                lambda: _make_peer("racetrack-v0", gray),
            ),
        ]
    )


def _make_peer(env_id: str, config: dict[str, Any]) -> gym.Env:
    """The bare peer env (no gym.make wrappers: ours are timed bare too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # racetrack-v0 has a v1; v0 is the one compared
        return gym.make(env_id, config=config).unwrapped


def _dist_version(dist: str) -> str:
    """Installed version of a distribution, or '?'."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def ratios(ours: list[EnvBenchResult], peers: list[EnvBenchResult]) -> dict[str, float]:
    """Our steps/s divided by the peer's, per kind (lidar vs lidar, camera vs camera)."""
    peer_by_kind = {p.kind: p for p in peers}
    return {o.kind: o.steps_per_s / peer_by_kind[o.kind].steps_per_s for o in ours if o.kind in peer_by_kind}


@dataclass(frozen=True)
class LapTimeRow:
    """The centerline lap-time reference of one track with the default built-in car."""

    track: str
    length_m: float
    lap_time_s: float  # flying lap
    standing_start_lap_time_s: float
    average_speed_mps: float
    centerline_feasible: bool


def lap_time_rows() -> list[LapTimeRow]:
    """The lap-time reference of every bundled track (default built-in simulator limits)."""
    from control.sim.lap_time import lap_time_reference
    from control.sim.registry import vehicle_limits
    from control.track.track import Track, bundled_track_names

    limits = vehicle_limits({"simulator": "builtin"})
    rows = []
    for name in bundled_track_names():
        ref = lap_time_reference(Track.load(name), limits)
        rows.append(
            LapTimeRow(name, ref.track_length_m, ref.lap_time_s, ref.standing_start_lap_time_s, ref.average_speed_mps, ref.centerline_feasible)
        )
    return rows


def format_throughput(ours: list[EnvBenchResult], peers: list[EnvBenchResult], peer_note: str | None) -> str:
    """The throughput table, with our/peer ratios per kind."""
    rate = ratios(ours, peers)
    header = f"{'env':<52} {'obs shape':>13} {'steps':>7} {'steps/s':>9} {'cpu st/s':>9} {'resets':>6} {'reset ms':>8}  {'vs peer':>7}"
    lines = [
        "Env throughput (random actions; env.step only, resets timed separately; "
        "steps/s: wall clock, cpu st/s: per CPU second of this process)",
        header,
        "-" * len(header),
    ]
    for r, is_ours in [*((o, True) for o in ours), *((p, False) for p in peers)]:
        ratio = f"{rate[r.kind]:6.1f}x" if is_ours and r.kind in rate else ""
        shape = "x".join(map(str, r.observation_shape))
        lines.append(
            f"{r.name:<52} {shape:>13} {r.steps:>7} {r.steps_per_s:>9,.0f} {r.cpu_steps_per_s:>9,.0f} {r.resets:>6} {r.mean_reset_ms:>8.2f}  {ratio:>7}"
        )
    if peer_note:
        lines.append(peer_note)
    return "\n".join(lines)


def format_lap_times(rows: list[LapTimeRow]) -> str:
    """The lap-time reference table."""
    header = f"{'track':<12} {'length m':>9} {'lap s':>7} {'standing s':>10} {'avg m/s':>8} {'centerline feasible':>20}"
    lines = ["Lap-time reference (centerline, default built-in car: 4 m/s, mu 0.7)", header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r.track:<12} {r.length_m:>9.2f} {r.lap_time_s:>7.2f} {r.standing_start_lap_time_s:>10.2f} "
            f"{r.average_speed_mps:>8.2f} {str(r.centerline_feasible):>20}"
        )
    return "\n".join(lines)


def run_env_benchmark(
    max_steps: int = 30_000,
    max_seconds: float = 5.0,
    peer_max_steps: int = 3_000,
    peer_max_seconds: float = 5.0,
    track: str | None = None,
    with_peers: bool = True,
    seed: int = 0,
    log: Callable[[str], None] = print,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    race_batch_sizes: tuple[int, ...] = RACE_BATCH_SIZES,
) -> dict[str, Any]:
    """Measure our envs and the peer envs, print the tables, return the results as a dict."""
    track = track or largest_bundled_track()
    ours = []
    for spec in our_env_specs(track):
        log(f"measuring {spec.name} ...")
        ours.append(measure_env(spec, max_steps, max_seconds, seed=seed))
    peers: list[EnvBenchResult] = []
    peer_note = None
    if with_peers:
        status = peer_env_specs()
        peer_note = status.skipped_reason
        for spec in status.specs:
            log(f"measuring {spec.name} ...")
            peers.append(measure_env(spec, peer_max_steps, peer_max_seconds, seed=seed))
    else:
        peer_note = "peer comparison skipped (--no-peers)"
    vector_rows: list[VectorBenchResult] = []
    for name, config in vector_env_configs(track).items():
        for n in batch_sizes:
            log(f"measuring RacingVectorEnv {name}, N={n} ...")
            vector_rows.append(measure_vector_env(name, config, n, max(max_steps, n), max_seconds, seed=seed))
    time_trial_name = f"vlidar {NUM_RAYS} rays"
    time_trial_rows = [r for r in vector_rows if r.name == time_trial_name and r.num_envs in race_batch_sizes]
    for n in sorted(set(race_batch_sizes) - {r.num_envs for r in time_trial_rows}):  # the race rows' N always has its time trial
        log(f"measuring RacingVectorEnv {time_trial_name}, N={n} ...")
        time_trial_rows.append(measure_vector_env(time_trial_name, vector_env_configs(track)[time_trial_name], n, max(max_steps, n),
                                                  max_seconds, seed=seed))
        vector_rows.append(time_trial_rows[-1])
    race_rows: dict[str, list[VectorBenchResult]] = {}
    for name, (race, config) in race_vector_configs(track).items():
        for n in race_batch_sizes:
            log(f"measuring RacingVectorEnv {name}, N={n} ...")
            race_rows.setdefault(race, []).append(measure_vector_env(name, config, n, max(max_steps, n), max_seconds, seed=seed))
    vector_rows.extend(r for rows in race_rows.values() for r in rows)
    costs = race_costs(time_trial_rows, race_rows)
    import tempfile

    with tempfile.TemporaryDirectory() as reward_dir:
        log("measuring a user reward file ...")
        user_reward = measure_user_reward_cost(track, max(max_steps, USER_REWARD_CARS), max_seconds, reward_dir, seed=seed)
    laps = lap_time_rows()
    log("")
    log(format_throughput(ours, peers, peer_note))
    log("")
    log(format_vector_table(vector_rows, user_reward, costs))
    log("")
    log(format_lap_times(laps))
    return {
        "track": track,
        "ours": [r.as_dict() for r in ours],
        "peers": [r.as_dict() for r in peers],
        "peer_skipped_reason": peer_note,
        "ratios_vs_peer": ratios(ours, peers),
        "vector": [r.as_dict() for r in vector_rows],
        "race_costs": [c.as_dict() for c in costs],
        "user_reward_file": user_reward,
        "lap_time_reference": [asdict(r) for r in laps],
    }
