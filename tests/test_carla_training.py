"""A real tiny RLlib/Tune run on the CARLA backend (fake `carla` injected): the server dies mid-run,
the episode ends as truncated with the reason, the backend reconnects, and training continues."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from control.training.cli import main

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
BATCH = 128

pytestmark = pytest.mark.timeout(300)


def test_server_death_at_step_n_is_recovered_and_training_continues(ray_session, tmp_path):
    # The fake server dies at its 150th tick (mid-episode of the second batch) and is brought back
    # when the backend reconnects; `_fake_module` / `_fake_options` are test-only hooks.
    fake = "{_fake_module: tests.fake_carla, _fake_options: {die_after_ticks: 150, revive_dead: true}, " \
           "avoid_server_init: true, timeout_s: 2.0, retries: {max_restarts: 3, backoff_s: 0.1}, " \
           "camera: {enabled: false}}"
    rc = main([VLIDAR, "-n", "carla_fake", "--results_dir", str(tmp_path), "--stop_iteration", "2", "--state_log",
               "--set", "env_config.simulator=carla", "--set", f"env_config.carla={fake}",
               "--set", f"train_batch_size={BATCH}", "--set", "minibatch_size=64", "--set", "num_epochs=1",
               "--set", "num_envs_per_env_runner=1",
               "--set", "env_config.max_episode_steps=50", "--seed", "0", "-v", "0"])
    assert rc == 0
    (result_file,) = (tmp_path / "carla_fake").rglob("result.json")
    history = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
    assert [r["training_iteration"] for r in history] == [1, 2]
    statuses = []
    for path in sorted((tmp_path / "carla_fake" / "state_log").glob("iter_*.csv")):
        with open(path, newline="") as fh:
            statuses += [row["episode_status"] for row in csv.DictReader(fh)]
    assert "sim_error" in statuses  # the death happened and ended an episode as truncated...
    after = statuses[statuses.index("sim_error") + 1:]
    assert len(after) > 20  # ...and sampling went on afterwards on the reconnected server
