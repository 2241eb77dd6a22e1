"""Shared fixtures. Others may append fixtures here; keep each one small and documented."""
from __future__ import annotations

import os

import pytest

# One torch/BLAS thread per process: with 2 cores and a busy neighbour, 2 threads cost 10x (STACK_NOTES).
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by every test that trains (started once, stopped at the end)."""
    import ray
    import torch

    torch.set_num_threads(1)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    if started:
        ray.shutdown()
