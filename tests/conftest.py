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
        # address="local": always a private instance, never a cluster another process (`ray start`) left running.
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    if started:
        ray.shutdown()


# Markers from what a test uses, so `make test_fast` (-m "not ray and not docker and not slow and not chaos")
# needs no list to keep up to date: a test that reaches a Ray session, a Docker daemon or a real MLflow
# server through any fixture is marked for it. Tests may also carry the markers explicitly.
_FIXTURE_MARKERS = {"ray_session": "ray", "real_docker": "docker", "mlflow_server": "slow", "mlflow_server_factory": "slow"}
# Modules whose tests start real subprocesses (ppo_train.py, ppo_inference_ray.py) or train for real.
_SLOW_MODULES = {"test_train_subprocess", "test_bench_train", "test_mlflow_training", "test_carla_training"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Add the ray / docker / slow markers a test's fixtures and module imply."""
    for item in items:
        for fixture, marker in _FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in _SLOW_MODULES:
            item.add_marker("slow")
