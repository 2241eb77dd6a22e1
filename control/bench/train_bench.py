"""Learning-speed benchmark: time to the first lapping iteration, training throughput and the env's share of it.

Trains a shipped config from scratch through ppo_train.py's own code (in this process, runs in a
benchmark folder, never the user's results/), stopping at the first iteration whose
env_runners/lap_progress_mean reaches the threshold (100 %: the policy laps) or at the cap.
Every figure is read back from the run's result.json. The same config on a no-op env with the
same spaces (control/bench/noop_env.py) gives the cost of RLlib alone; the difference is the env.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from control.bench.training_runs import (
    CAMERA_CONFIG,
    VLIDAR_CONFIG,
    TrainingRun,
    benchmark_dir,
    config_path,
    display_path,
    format_optional,
    machine_description,
    train_config,
)

PROGRESS_KEY = "lap_progress_mean"  # under env_runners/ (control.integration.callbacks.metrics)


# --------------------------------------------------------------------------- figures from result.json
def _progress(row: dict[str, Any]) -> float | None:
    value = (row.get("env_runners") or {}).get(PROGRESS_KEY)
    return float(value) if isinstance(value, (int, float)) else None


def first_iteration_reaching(rows: list[dict[str, Any]], progress_pct: float) -> dict[str, Any] | None:
    """The first result whose env_runners/lap_progress_mean is >= progress_pct, or None."""
    for row in rows:
        progress = _progress(row)
        if progress is not None and progress >= progress_pct:
            return row
    return None


@dataclass
class TimeToLap:
    """Figures at the first iteration reaching the progress threshold (or at the last one, when not reached)."""

    config: str
    progress_threshold_pct: float
    reached: bool
    iterations: int
    env_steps: int
    training_time_s: float  # Tune's time_total_s at that iteration (training only)
    wall_time_s: float  # the whole run as a user waits for it (start-up, training, final checkpoint)
    lap_progress_mean_pct: float | None
    best_lap_progress_mean_pct: float | None
    train_steps_per_s: float  # env steps / training time
    stop_reason: str

    @property
    def wall_min(self) -> float:
        return self.wall_time_s / 60.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, minutes included."""
        return {**asdict(self), "wall_min": self.wall_min, "training_time_min": self.training_time_s / 60.0}


def time_to_lap(run: TrainingRun, progress_pct: float, config: str = "") -> TimeToLap:
    """TimeToLap from a run's results: the first iteration reaching progress_pct, else its last iteration."""
    row = first_iteration_reaching(run.rows, progress_pct)
    reached = row is not None
    row = row if row is not None else run.rows[-1]
    steps = int(row["num_env_steps_sampled_lifetime"])
    training_s = float(row["time_total_s"])
    progresses = [p for p in map(_progress, run.rows) if p is not None]
    return TimeToLap(
        config=config, progress_threshold_pct=progress_pct, reached=reached,
        iterations=int(row["training_iteration"]), env_steps=steps, training_time_s=training_s,
        wall_time_s=run.wall_s, lap_progress_mean_pct=_progress(row),
        best_lap_progress_mean_pct=max(progresses) if progresses else None,
        train_steps_per_s=steps / training_s if training_s > 0 else float("nan"), stop_reason=run.stop_reason)


# RLlib logs its timers as moving averages v_n = (1 - a) v_(n-1) + a x_n with this coefficient
# (MetricsLogger's default for reduce="ema"); inverting it gives each iteration's own time x_n.
RLLIB_TIMER_EMA_COEFF = 0.01
SAMPLING_TIMER = "env_runner_sampling_timer"
ITERATION_TIMER = "training_iteration"


def per_iteration_timer(rows: list[dict[str, Any]], key: str, ema_coeff: float = RLLIB_TIMER_EMA_COEFF) -> list[float]:
    """Each iteration's own value of RLlib's smoothed timers/<key> (NaN where it is missing)."""
    values: list[float] = []
    previous: float | None = None
    for row in rows:
        smoothed = (row.get("timers") or {}).get(key)
        if not isinstance(smoothed, (int, float)):
            values.append(float("nan"))
            previous = None
            continue
        values.append(float(smoothed) if previous is None
                      else (float(smoothed) - (1.0 - ema_coeff) * previous) / ema_coeff)
        previous = float(smoothed)
    return values


def timers_match_iterations(rows: list[dict[str, Any]], rel_tol: float = 0.05, abs_tol_s: float = 0.05) -> bool:
    """True when the recovered iteration timer agrees with Tune's exact time_this_iter_s on every row.

    Guards the EMA inversion: should RLlib change how it smooths timers, the sampling figures are dropped.
    """
    recovered = per_iteration_timer(rows, ITERATION_TIMER)
    return bool(rows) and all(
        abs(x - float(row["time_this_iter_s"])) <= rel_tol * float(row["time_this_iter_s"]) + abs_tol_s
        for x, row in zip(recovered, rows, strict=False))


@dataclass
class IterationCost:
    """Time of a run's iterations and of their sampling part, with the env steps they sampled."""

    iterations: int  # iterations summed (the first, warm-up, is left out when there are more)
    env_steps: int
    iteration_s: float  # Tune's exact time_this_iter_s, summed
    sampling_s: float  # RLlib's sampling timer per iteration, summed; NaN when the timers cannot be read

    @property
    def train_steps_per_s(self) -> float:
        return self.env_steps / self.iteration_s if self.iteration_s > 0 else float("nan")

    @property
    def sample_steps_per_s(self) -> float:
        return self.env_steps / self.sampling_s if self.sampling_s > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields with the rates."""
        return {**asdict(self), "train_steps_per_s": self.train_steps_per_s, "sample_steps_per_s": self.sample_steps_per_s}


def iteration_cost(rows: list[dict[str, Any]]) -> IterationCost:
    """Summed iteration and sampling time and env steps, leaving out the first (warm-up) iteration."""
    sampling = per_iteration_timer(rows, SAMPLING_TIMER)
    usable = timers_match_iterations(rows)
    first = 1 if len(rows) > 1 else 0
    used = rows[first:]
    steps = sum(float((r.get("env_runners") or {}).get("num_env_steps_sampled", 0.0)) for r in used)
    return IterationCost(
        iterations=len(used), env_steps=int(steps),
        iteration_s=sum(float(r["time_this_iter_s"]) for r in used),
        sampling_s=sum(sampling[first:]) if usable else float("nan"))


@dataclass
class EnvShare:
    """The env's share of training and sampling time: the real env against a no-op env of the same spaces."""

    real_train_steps_per_s: float
    noop_train_steps_per_s: float
    real_sample_steps_per_s: float
    noop_sample_steps_per_s: float

    @property
    def of_training(self) -> float:
        """1 - (no-op s/step) / (real s/step) over whole iterations."""
        return 1.0 - self.real_train_steps_per_s / self.noop_train_steps_per_s

    @property
    def of_sampling(self) -> float:
        """1 - (no-op s/step) / (real s/step) over sampling only."""
        return 1.0 - self.real_sample_steps_per_s / self.noop_sample_steps_per_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "env_share_of_training": self.of_training, "env_share_of_sampling": self.of_sampling}


def env_share(real: IterationCost, noop: IterationCost) -> EnvShare:
    """Compare the real env's iteration costs with the no-op env's (same config, same spaces)."""
    return EnvShare(real.train_steps_per_s, noop.train_steps_per_s, real.sample_steps_per_s, noop.sample_steps_per_s)


@dataclass
class IterationSplit:
    """Where one iteration's time goes, from RLlib's per-call timers (moving averages: approximate)."""

    batch_steps: float  # vector-env steps per iteration (env steps / cars per runner)
    sampling_s: float  # per iteration, RLlib's sampling timer
    env_step_s: float  # the env's step (render and observation included)
    inference_s: float  # the RLModule's forward pass in sampling (the CNN's, for a camera policy)
    connectors_s: float  # env-to-module and module-to-env connector pipelines
    learner_s: float  # per iteration, the learner's update
    learner_connector_s: float  # the learner connector pipeline (GAE with its value forward pass)

    @property
    def sampling_other_s(self) -> float:
        """RLlib's episode bookkeeping and everything else in sampling."""
        return self.sampling_s - self.env_step_s - self.inference_s - self.connectors_s

    @property
    def sgd_s(self) -> float:
        """The minibatch SGD: forward and backward passes (the CNN's), optimiser steps."""
        return self.learner_s - self.learner_connector_s

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "sampling_other_s": self.sampling_other_s, "sgd_s": self.sgd_s}


def _number(row: dict[str, Any], keys: tuple[str, ...]) -> float:
    from control.training.stop import result_value

    value = result_value(row, keys)
    return float(value) if isinstance(value, (int, float)) else float("nan")


def call_mean_in_last_iteration(rows: list[dict[str, Any]], keys: tuple[str, ...], calls: float,
                                ema_coeff: float = RLLIB_TIMER_EMA_COEFF) -> float:
    """The mean per call of an RLlib moving-average timer over the last iteration's `calls` calls.

    m_after = (1 - a)^k m_before + (1 - (1 - a)^k) x for k calls of mean x; solved for x, so the
    warm-up's slow first calls (compilation) do not weigh on a short run's figure.
    """
    after = _number(rows[-1], keys)
    if len(rows) < 2 or calls < 1:
        return after
    before = _number(rows[-2], keys)
    decay = (1.0 - ema_coeff) ** calls
    mean = (after - decay * before) / (1.0 - decay)
    return mean if math.isnan(mean) else max(0.0, mean)  # noise in a short run must not read as negative time


def iteration_split(rows: list[dict[str, Any]]) -> IterationSplit | None:
    """The last iteration's split of sampling and learning time (per env runner), or None without timers.

    RLlib's env-runner timers are per call (one vector-env step) and averaged over runners; times
    one runner's batch steps of an iteration they give that part's time per iteration.
    """
    if not rows or not timers_match_iterations(rows):
        return None
    row = rows[-1]
    config = row.get("config") or {}
    cars_per_runner = int(config.get("num_envs_per_env_runner") or 1)
    num_runners = max(1, int(config.get("num_env_runners") or 0))
    steps = float((row.get("env_runners") or {}).get("num_env_steps_sampled") or 0.0)
    batch_steps = steps / (cars_per_runner * num_runners)

    def per_iteration(*keys: str) -> float:
        return batch_steps * call_mean_in_last_iteration(rows, ("env_runners", *keys), batch_steps)

    split = IterationSplit(
        batch_steps=batch_steps, sampling_s=per_iteration_timer(rows, SAMPLING_TIMER)[-1],
        env_step_s=per_iteration("env_step_timer"), inference_s=per_iteration("rlmodule_inference_timer"),
        connectors_s=(per_iteration("env_to_module_connector", "connector_pipeline_timer")
                      + per_iteration("module_to_env_connector", "connector_pipeline_timer")),
        learner_s=per_iteration_timer(rows, "learner_update_timer")[-1],
        learner_connector_s=call_mean_in_last_iteration(
            rows, ("learners", "__all_modules__", "learner_connector", "connector_pipeline_timer"), 1))
    return None if any(math.isnan(v) for v in asdict(split).values()) else split


def format_split(split: dict[str, Any]) -> list[str]:
    """The split as printed lines: seconds per iteration and shares of the iteration."""
    total = split["sampling_s"] + split["learner_s"]
    parts = [("sampling", split["sampling_s"]), ("  env step (render incl.)", split["env_step_s"]),
             ("  policy forward (sampling)", split["inference_s"]), ("  connectors (sampling)", split["connectors_s"]),
             ("  episodes and other", split["sampling_other_s"]), ("learner update", split["learner_s"]),
             ("  learner connector (GAE)", split["learner_connector_s"]),
             ("  SGD: forward + backward", split["sgd_s"])]
    lines = [f"where an iteration goes (last iteration, {split['batch_steps']:.0f} vector-env steps; RLlib's moving-average "
             "timers: approximate)"]
    # The parts are per-call averages: their sum can exceed the exact sampling time a little, so the
    # rest is shown as at least 0 rather than as a negative time.
    shown = [(name, max(seconds, 0.0)) for name, seconds in parts]
    lines += [f"{name:<32}{seconds:>8.2f} s{100 * seconds / total:>6.0f} %" for name, seconds in shown]
    return lines


# --------------------------------------------------------------------------- the benchmark
# The camera config's training path when issue 13 was filed (one car per env, one torch thread,
# 8 cars, minibatches of 500, the 16-channel 8x8 first layer): `--camera` trains it side by side.
CAMERA_BASELINE_OVERRIDES = [
    "gym_env_vectorize_mode=sync", "torch_threads=1", "num_envs_per_env_runner=8", "minibatch_size=500", "num_epochs=6",
    "model.conv_filters=[[16, [8, 8], 4], [32, [4, 4], 2], [32, [3, 3], 2]]",
]
CAMERA_BASELINE_LABEL = "the camera path before issue 13 (one car per env, 1 torch thread, 8 cars, 16-channel 8x8 CNN)"


def run_time_to_lap(config: Path, results_dir: Path, *, progress_pct: float = 100.0, cap_s: float = 300.0,
                    noop_iterations: int = 3, max_iterations: int | None = None,
                    overrides: list[str] | None = None, seed: int | None = None,
                    sync_iterations: int = 0, baseline_overrides: list[str] | None = None,
                    baseline_label: str = "one car per env (sync)") -> dict[str, Any]:
    """Train `config` to the first iteration reaching progress_pct (or cap_s), then the no-op env; the figures.

    sync_iterations > 0: also train that many iterations on a baseline path (default: one car per
    env, `gym_env_vectorize_mode: sync`; or `baseline_overrides`, named `baseline_label`) and compare
    its training throughput with the same iterations of the config's path, side by side in this run.
    """
    from control.bench.noop_env import NOOP_OF_KEY, register_noop_env
    from control.training.config_loader import load_config_file

    raw = load_config_file(config)
    env_id = str(raw.get("env"))
    print(f"time to lap: training {config.name} until mean lap progress >= {progress_pct:g}% "
          f"(cap {cap_s / 60:.1f} min)", flush=True)
    real = train_config(config, results_dir, "time_to_lap", progress_pct=progress_pct, cap_s=cap_s,
                        max_iterations=max_iterations, overrides=overrides, seed=seed)
    ttl = time_to_lap(real, progress_pct, config=display_path(config))
    lap_rows = real.rows[:ttl.iterations]
    out: dict[str, Any] = {"machine": machine_description(), "time_to_lap": ttl.as_dict(),
                           "run_folder": str(real.folder), "checkpoint": str(real.checkpoint) if real.checkpoint else None}
    real_cost = iteration_cost(lap_rows)
    out["real_cost"] = real_cost.as_dict()
    split = iteration_split(lap_rows)
    if split is not None:
        out["iteration_split"] = split.as_dict()
    if noop_iterations > 0:
        print(f"no-op env with the same spaces: {noop_iterations} iterations", flush=True)
        noop_id = register_noop_env()
        noop = train_config(config, results_dir, "noop_env", progress_pct=None, cap_s=max(cap_s, 60.0),
                            max_iterations=noop_iterations, seed=seed,
                            overrides=[*(overrides or []), f"env={noop_id}", f"env_config.{NOOP_OF_KEY}={env_id}"])
        noop_cost = iteration_cost(noop.rows)
        share = env_share(real_cost, noop_cost)
        out["noop_cost"] = noop_cost.as_dict()
        out["env_share"] = share.as_dict()
    if sync_iterations > 0:
        baseline = baseline_overrides if baseline_overrides is not None else ["gym_env_vectorize_mode=sync"]
        print(f"baseline, {baseline_label}: {sync_iterations} iterations", flush=True)
        sync = train_config(config, results_dir, "sync_vectorize", progress_pct=None, cap_s=max(cap_s, 60.0),
                            max_iterations=sync_iterations, seed=seed, overrides=[*(overrides or []), *baseline])
        default_cost = iteration_cost(real.rows[:sync_iterations])
        sync_cost = iteration_cost(sync.rows)
        out["vectorize_comparison"] = {
            "iterations": sync_iterations,
            "default_train_steps_per_s": default_cost.train_steps_per_s,
            "sync_train_steps_per_s": sync_cost.train_steps_per_s,
            "speedup": default_cost.train_steps_per_s / sync_cost.train_steps_per_s,
            "baseline": baseline_label, "baseline_overrides": baseline,
        }
    print(format_time_to_lap(out), flush=True)
    return out


def _percent(share: float) -> str:
    return "n/a (RLlib's timers could not be read)" if math.isnan(share) else f"{100 * share:.0f} %"


def format_time_to_lap(out: dict[str, Any]) -> str:
    """The time-to-lap table, throughput and the env's share, with the machine."""
    t = out["time_to_lap"]
    verdict = "laps" if t["reached"] else f"NOT reached ({t['stop_reason']})"
    lines = [
        f"machine: {out['machine']}",
        f"config:  {t['config']}   target: mean lap progress >= {t['progress_threshold_pct']:g}%  -> {verdict}",
        f"{'':<28}{'value':>12}",
        f"{'wall time (start-up incl.)':<28}{t['wall_min']:>10.2f} min",
        f"{'training time':<28}{t['training_time_min']:>10.2f} min",
        f"{'iterations':<28}{t['iterations']:>12d}",
        f"{'env steps':<28}{t['env_steps']:>12d}",
        f"{'lap progress mean':<28}{format_optional(t['lap_progress_mean_pct'], '>10.1f')} %",
        f"{'training throughput':<28}{t['train_steps_per_s']:>8.0f} steps/s",
    ]
    if "iteration_split" in out:
        lines += format_split(out["iteration_split"])
    if "env_share" in out:
        s, n = out["env_share"], out["noop_cost"]
        lines += [
            f"{'':<28}{'real env':>12}{'no-op env':>12}",
            f"{'training steps/s':<28}{s['real_train_steps_per_s']:>12.0f}{s['noop_train_steps_per_s']:>12.0f}",
            f"{'sampling steps/s':<28}{s['real_sample_steps_per_s']:>12.0f}{s['noop_sample_steps_per_s']:>12.0f}",
            f"(no-op: {n['iterations']} iterations after the first, {n['env_steps']} steps)",
            f"env share of sampling time ≈ {_percent(s['env_share_of_sampling'])}   "
            f"of training time ≈ {_percent(s['env_share_of_training'])}",
        ]
    if "vectorize_comparison" in out:
        v = out["vectorize_comparison"]
        lines += [
            f"training steps/s, iterations 2..{v['iterations']}: this config's path "
            f"{v['default_train_steps_per_s']:.0f}  vs  {v['baseline']} {v['sync_train_steps_per_s']:.0f}"
            f"  -> {v['speedup']:.2f}x",
        ]
    return "\n".join(lines)


def run_train_benchmark(*, camera: bool = False, config: str | None = None, cap_s: float | None = None,
                        progress_pct: float = 100.0, noop_iterations: int = 3, bench_dir: str | None = None,
                        seed: int | None = None, sync_iterations: int = 5) -> dict[str, Any]:
    """The `train` benchmark's default: time to lap of the vlidar (or camera, or any) config."""
    path = config_path(config, CAMERA_CONFIG if camera else VLIDAR_CONFIG)
    cap = cap_s if cap_s is not None else (30 * 60.0 if camera else 5 * 60.0)
    baseline = {"baseline_overrides": CAMERA_BASELINE_OVERRIDES, "baseline_label": CAMERA_BASELINE_LABEL} if camera else {}
    with benchmark_dir(bench_dir) as folder:
        return {"time_to_lap": run_time_to_lap(path, folder, progress_pct=progress_pct, cap_s=cap,
                                               noop_iterations=noop_iterations, seed=seed,
                                               sync_iterations=sync_iterations, **baseline)}
