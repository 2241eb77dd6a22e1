"""Export benchmark: per-step inference latency on one core, exported ONNX graph vs the torch RLModule, side by side.

For each shipped config (vlidar MLP, camera CNN) the policy network is built as training builds it (fresh
weights: latency does not depend on their values), exported with `control.export`'s own graph, and both
runtimes act on one real observation at a time, as a rollout or a car does: the torch side through the
rollout's `inference.Policy`, the ONNX side through onnxruntime with one thread. The process is pinned
to one CPU while it measures.
"""
from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from control.training.run_folder import REPO_ROOT

CONFIGS = {  # name -> shipped config
    "vlidar MLP": REPO_ROOT / "resources/configs/ppo_vlidar_config.yaml",
    "camera CNN": REPO_ROOT / "resources/configs/ppo_camera_config.yaml",
}
VLIDAR_TARGET_MS = 0.2  # issue 15: the exported vlidar policy acts in <= 0.2 ms per step on one core
OBSERVATION_POOL = 256  # real observations, cycled through while timing


@dataclass
class LatencyResult:
    """One model's per-step latency in both runtimes, ms (median and 90th percentile over `steps` calls)."""

    name: str
    observation_shape: tuple[int, ...]
    steps: int
    onnx_median_ms: float
    onnx_p90_ms: float
    torch_median_ms: float
    torch_p90_ms: float

    @property
    def speedup(self) -> float:
        """torch median / ONNX median."""
        return self.torch_median_ms / self.onnx_median_ms if self.onnx_median_ms > 0 else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields with the speed-up."""
        return {**asdict(self), "speedup": self.speedup}


@contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process to one of its allowed CPUs (where the OS allows), restoring the set afterwards."""
    if not hasattr(os, "sched_getaffinity"):
        yield None
        return
    allowed = os.sched_getaffinity(0)
    core = max(allowed)  # the last one: the first is where most other work lands
    os.sched_setaffinity(0, {core})
    try:
        yield core
    finally:
        os.sched_setaffinity(0, allowed)


def time_calls(act: Callable[[Any], Any], observations: list[Any], steps: int) -> np.ndarray:
    """Wall time of each of `steps` calls act(observation), s (a few untimed calls first to warm up)."""
    for obs in observations[:10]:
        act(obs)
    times = np.empty(steps)
    for i in range(steps):
        obs = observations[i % len(observations)]
        start = time.perf_counter()
        act(obs)
        times[i] = time.perf_counter() - start
    return times


def _observations(env: Any, count: int, seed: int) -> list[Any]:
    """`count` observations the env emits under random actions (episodes restarted as they end)."""
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = []
    for _ in range(count):
        out.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    return out


def measure_config(name: str, config_path: Path, steps: int, seed: int, work_dir: Path) -> LatencyResult:
    """Build the config's policy network, export it, and time both runtimes on one observation per call."""
    import onnxruntime as ort
    import torch

    from control.env.racing_env import RacingEnv
    from control.export.graph import PolicyGraph, command_mapping, example_batch, export_onnx
    from control.export.layout import ACTION_OUTPUT, INPUT_NAME
    from control.rollout.inference import MODULE_SUBDIR, Policy
    from control.training.config_loader import load_ppo_config

    torch.manual_seed(seed)
    ppo, resolved = load_ppo_config(config_path)
    env = RacingEnv(resolved.env_config)
    try:
        observations = _observations(env, OBSERVATION_POOL, seed)
        module = ppo.get_rl_module_spec(env=env).build()
        checkpoint = work_dir / name.replace(" ", "_")
        module.save_to_path(str(checkpoint / MODULE_SUBDIR))  # where a training checkpoint keeps it
        policy = Policy(checkpoint)  # the rollout's torch path, as ppo_inference_ray.py acts
        mapping = command_mapping(env.action_type, env.action_space, env.limits)
        graph = PolicyGraph(policy.module, policy.action_dist_cls, policy.action_space, mapping, None)
        model_path = checkpoint / "model.onnx"
        export_onnx(graph, example_batch(env.observation_space, seed), model_path)
    finally:
        env.close()
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    dtype = env.observation_space.dtype

    def onnx_act(obs: Any) -> Any:
        return session.run([ACTION_OUTPUT], {INPUT_NAME: np.asarray(obs, dtype=dtype)[None]})[0][0]

    with one_core():
        onnx_s = time_calls(onnx_act, observations, steps)
        torch_s = time_calls(policy.compute_action, observations, steps)
    ms = 1000.0
    return LatencyResult(name, tuple(env.observation_space.shape), steps,
                         float(np.median(onnx_s) * ms), float(np.percentile(onnx_s, 90) * ms),
                         float(np.median(torch_s) * ms), float(np.percentile(torch_s, 90) * ms))


def format_latency(results: list[LatencyResult]) -> str:
    """The side-by-side table, with the vlidar target."""
    header = (f"{'policy':<12} {'obs shape':>10} {'steps':>6} {'onnx ms':>8} {'p90':>6} {'torch ms':>9} {'p90':>6} "
              f"{'speed-up':>8}")
    lines = [header, "-" * len(header)]
    for r in results:
        shape = "x".join(map(str, r.observation_shape))
        lines.append(f"{r.name:<12} {shape:>10} {r.steps:>6} {r.onnx_median_ms:>8.3f} {r.onnx_p90_ms:>6.3f} "
                     f"{r.torch_median_ms:>9.3f} {r.torch_p90_ms:>6.3f} {r.speedup:>7.1f}x")
    vlidar = next((r for r in results if r.name.startswith("vlidar")), None)
    if vlidar is not None:
        met = "met" if vlidar.onnx_median_ms <= VLIDAR_TARGET_MS else "NOT met"
        lines.append(f"target: exported vlidar policy <= {VLIDAR_TARGET_MS} ms per step on one core: {met} "
                     f"({vlidar.onnx_median_ms:.3f} ms median)")
    return "\n".join(lines)


def run_export_benchmark(steps: int = 2000, seed: int = 0, names: list[str] | None = None) -> dict[str, Any]:
    """Measure every shipped config (or `names`), print the table; returns the JSON-ready figures."""
    results = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        for name, path in CONFIGS.items():
            if names is None or name in names:
                results.append(measure_config(name, path, steps, seed, Path(tmp)))
    print(format_latency(results))
    return {"results": [r.as_dict() for r in results], "vlidar_target_ms": VLIDAR_TARGET_MS}
