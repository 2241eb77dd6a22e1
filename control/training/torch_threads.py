"""torch_threads: how many threads torch uses in the algorithm's process (the learner, and sampling with 0 env runners).

Every Ray process starts with one (OMP_NUM_THREADS=1: two threads on a busy core cost ~10×, STACK_NOTES).
With num_env_runners 0, sampling and the PPO update take turns in one process, so during the update the
other core is idle: a CNN update uses it (camera config, 2 threads: ~20 % less time per iteration, measured).
"""
from __future__ import annotations

from typing import Any

from control.errors import ConfigError

DEFAULT_TORCH_THREADS = 1


def resolve_torch_threads(value: Any, where: str) -> int:
    """The config's torch_threads as a whole number >= 1 (absent: 1)."""
    if value is None:
        return DEFAULT_TORCH_THREADS
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: torch_threads must be a whole number >= 1 (got {value!r})")
    return value


def torch_threads_callback(threads: int) -> type:
    """An RLlib callback class that sets torch's thread count in the algorithm's process when it starts."""
    from ray.rllib.callbacks.callbacks import RLlibCallback

    class TorchThreads(RLlibCallback):
        def on_algorithm_init(self, *, algorithm: Any, **kwargs: Any) -> None:
            import torch

            torch.set_num_threads(threads)

    TorchThreads.__name__ = TorchThreads.__qualname__ = f"TorchThreads{threads}"
    return TorchThreads
