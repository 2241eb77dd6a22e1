"""Real tiny RLlib/Tune runs on the CARLA backend (fake `carla` injected): the server dies mid-run,
the episode ends as truncated with the reason, the backend reconnects, and training continues;
and launch mode refuses, in one line, a derived port that someone else's server already answers on."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from control.training.cli import main
from tests.docker_standin.daemon import free_base_port, listening_on, real_docker_or_skip, remove_labelled

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


@pytest.fixture(scope="module")
def real_docker():
    client, image = real_docker_or_skip()
    yield client, image
    remove_labelled(client)
    client.close()


def test_training_refuses_a_carla_port_someone_else_serves_in_one_line(ray_session, real_docker, tmp_path, capsys):
    # Launch mode, and something already listens on the local runner's RPC port: the run stops with the
    # one-line error naming that port instead of driving a server it did not start.
    client, image = real_docker
    base = free_base_port()
    carla = (f"{{_fake_module: tests.fake_carla, avoid_server_init: false, image: '{image}', gpu: null, "
             f"port: {base}, run_name: pytest-standin, timeout_s: 2.0, startup_timeout_s: 15.0, "
             f"retries: {{max_restarts: 1, backoff_s: 0.1}}, camera: {{enabled: false}}}}")
    with listening_on(base):
        rc = main([VLIDAR, "-n", "carla_busy_port", "--results_dir", str(tmp_path), "--stop_iteration", "1",
                   "--set", "env_config.simulator=carla", "--set", f"env_config.carla={carla}",
                   "--set", f"train_batch_size={BATCH}", "--set", "minibatch_size=64", "--set", "num_epochs=1",
                   "--set", "env_config.max_episode_steps=50", "--seed", "0", "-v", "0"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert rc == 2
    assert len(errors) == 1 and f"RPC port {base} " in errors[0] and "avoid_server_init: true" in errors[0]
    assert client.containers.list(all=True, filters={"label": ["racer.carla.run=pytest-standin"]}) == []
