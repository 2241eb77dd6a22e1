"""ppo_train's --mlflow_uri through the real training pipeline (tiny PPO on the racing env) and a real server."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")
from mlflow import MlflowClient  # noqa: E402

from control.integration.callbacks.mlflow_callback import (  # noqa: E402
    CONFIG_ARTIFACT,
    RUN_ID_FILE,
    CustomMlflowCallback,
)
from control.integration.param_flatten import TRUNCATION_MARKER  # noqa: E402
from control.training.cli import main  # noqa: E402
from control.training.run_folder import REPO_ROOT  # noqa: E402
from tests.mlflow_server import MlflowServer, mlflow_server, mlflow_server_factory  # noqa: E402,F401

pytestmark = pytest.mark.timeout(600)
LOGGER = "control.integration.callbacks.mlflow_callback"
# A learning-rate schedule with 400 points: one param value longer than any server keeps.
LONG_SCHEDULE = [[i * 1000, 3e-4 * (1.0 - i / 1000.0)] for i in range(400)]


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    """The vlidar config shrunk to seconds per iteration, with a long lr schedule."""
    config = yaml.safe_load((REPO_ROOT / "resources/configs/ppo_vlidar_config.yaml").read_text())
    config.update(
        train_batch_size=200, minibatch_size=100, num_epochs=1, lr=LONG_SCHEDULE, num_envs_per_env_runner=1,
        model={"fcnet_hiddens": [16, 16], "fcnet_activation": "tanh", "vf_share_layers": False},
        stop={"iteration": 100}, checkpoint={"frequency": 100, "num_to_keep": 2},
    )  # fmt: skip
    config["env_config"]["max_episode_steps"] = 60
    path = tmp_path / "tiny_vlidar.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def train(config: Path, results: Path, uri: str, *extra: str) -> int:
    return main([str(config), "-n", "run1", "--results_dir", str(results), "--mlflow_uri", uri, "-v", "0", *extra])


def steps_of(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_train_logs_params_config_metrics_and_restore_continues_the_run(
    ray_session, mlflow_server, tiny_config, tmp_path
):
    results = tmp_path / "results"
    assert train(tiny_config, results, mlflow_server.url, "--stop_iteration", "2", "--state_log", "--mlflow_checkpoints") == 0
    run_folder = results / "run1"
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    client = MlflowClient(mlflow_server.url)
    run = client.get_run(run_id)
    params = run.data.params

    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tiny_vlidar"  # the config's stem
    assert params["env"] == "RacerVLidar-v0"
    assert params["env_config.observation.num_rays"] == "32"
    assert params["model_config.fcnet_hiddens.1"] == "16"
    assert params["stop.iteration"] == "2"
    assert len(params["lr"]) == 6000 and params["lr"].endswith(TRUNCATION_MARKER)
    assert params["lr"].startswith("[[0, 0.0003], [1000, ")

    # The config artifact is the full resolved config: the schedule is all there.
    logged = yaml.safe_load(Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path / "dl"))).read_text())
    recorded = yaml.safe_load((run_folder / "config.yaml").read_text())
    assert logged["lr"] == LONG_SCHEDULE
    assert {k: v for k, v in logged.items() if k != "stop"} == {k: v for k, v in recorded.items() if k != "stop"}
    command = Path(client.download_artifacts(run_id, "config/command_line.txt", str(tmp_path / "dl"))).read_text()
    assert "--mlflow_uri" in command and "--stop_iteration 2" in command

    for key in (
        "env_runners/episode_return_mean", "env_runners/episode_return_min", "env_runners/episode_return_max",
        "env_runners/lap_progress_mean", "env_runners/offtrack_rate", "learners/default_policy/entropy",
        "learners/default_policy/policy_loss", "learners/default_policy/vf_loss", "throughput/env_steps_per_s",
    ):  # fmt: skip
        assert steps_of(client, run_id, key) == [1, 2], key
    assert client.list_artifacts(run_id, "state_log"), "state log not uploaded"
    assert client.list_artifacts(run_id, "checkpoint"), "final checkpoint not uploaded"

    # make train_restore: same run folder, same MLflow run, steps continue at 3.
    assert main(["-n", "run1", "--results_dir", str(results), "--restore", "--stop_iteration", "3",
                 "--mlflow_uri", mlflow_server.url, "-v", "0"]) == 0  # fmt: skip
    assert (run_folder / RUN_ID_FILE).read_text().strip() == run_id
    assert steps_of(client, run_id, "env_runners/episode_return_mean") == [1, 2, 3]
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_server_stopped_mid_training_does_not_fail_it(
    ray_session, mlflow_server_factory, tiny_config, tmp_path, monkeypatch, caplog
):
    server: MlflowServer = mlflow_server_factory()
    log_result = CustomMlflowCallback.log_trial_result

    def log_then_stop_server(self, iteration, trial, result):
        log_result(self, iteration, trial, result)
        if result["training_iteration"] == 1:
            server.stop()

    monkeypatch.setattr(CustomMlflowCallback, "log_trial_result", log_then_stop_server)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert train(tiny_config, tmp_path / "results", server.url, "--stop_iteration", "3") == 0

    assert "unreachable" in caplog.text and "not finalised" in caplog.text
    run_id = (tmp_path / "results" / "run1" / RUN_ID_FILE).read_text().strip()
    server.start()  # same store: what was logged before the outage is there
    assert steps_of(MlflowClient(server.url), run_id, "env_runners/episode_return_mean") == [1]


def test_server_refusing_long_values_gets_shorter_ones(ray_session, mlflow_server, tiny_config, tmp_path, monkeypatch, caplog):
    from mlflow.exceptions import RestException

    # An old (MLflow 1.x) server, simulated at the client boundary: values over 250 characters refused.
    real_log_batch = MlflowClient.log_batch
    refused: list[int] = []

    def old_server_log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        too_long = [p for p in params if len(p.value) > 250]
        if too_long:
            refused.append(len(too_long[0].value))
            raise RestException({"error_code": "INVALID_PARAMETER_VALUE",
                                 "message": f"Param value '{too_long[0].value[:20]}' had length "
                                            f"{len(too_long[0].value)}, which exceeded length limit of 250"})  # fmt: skip
        return real_log_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", old_server_log_batch)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert train(tiny_config, tmp_path / "results", mlflow_server.url, "--stop_iteration", "1") == 0

    assert refused == [6000]
    client = MlflowClient(mlflow_server.url)
    run_id = (tmp_path / "results" / "run1" / RUN_ID_FILE).read_text().strip()
    params = client.get_run(run_id).data.params
    assert len(params["lr"]) == 250 and params["lr"].endswith(TRUNCATION_MARKER)
    assert params["env_config.track"] == "oval"
    assert steps_of(client, run_id, "env_runners/episode_return_mean") == [1]
    assert "retrying with values cut to 250" in caplog.text
