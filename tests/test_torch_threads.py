"""torch_threads: a config key for torch's thread count in the algorithm's process (the learner's CNN update)."""
from __future__ import annotations

import pytest
import torch

from control.errors import ConfigError
from control.training.config_loader import apply_overrides, load_config_file, resolve_config
from control.training.torch_threads import torch_threads_callback

CONFIG = "resources/configs/ppo_camera_config.yaml"


def resolve(*assignments: str):
    return resolve_config(apply_overrides(load_config_file(CONFIG), list(assignments)), where="c.yaml")


def test_default_is_one_thread_and_the_run_config_keeps_a_set_value():
    assert resolve("torch_threads=1").torch_threads == 1
    resolved = resolve("torch_threads=3")
    assert resolved.torch_threads == 3
    assert resolve_config(resolved.to_dict(), where="config.yaml").torch_threads == 3  # the run's config.yaml reads back


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "true", "many"])
def test_a_bad_value_is_one_line(value):
    with pytest.raises(ConfigError, match=r"c\.yaml: torch_threads must be a whole number >= 1"):
        resolve(f"torch_threads={value}")


def test_the_callback_sets_torchs_threads_when_the_algorithm_starts():
    before = torch.get_num_threads()
    try:
        torch_threads_callback(2)().on_algorithm_init(algorithm=None)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
