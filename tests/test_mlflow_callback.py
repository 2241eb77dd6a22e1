"""CustomMlflowCallback in real Tune runs against a real `mlflow server` (SQLite) on 127.0.0.1."""
from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ray = pytest.importorskip("ray")
from mlflow import MlflowClient  # noqa: E402
from ray import tune  # noqa: E402

from control.integration import mlflow_sync  # noqa: E402
from control.integration.callbacks import mlflow_callback  # noqa: E402
from control.integration.callbacks.mlflow_callback import (  # noqa: E402
    CONFIG_ARTIFACT,
    RUN_ID_FILE,
    CustomMlflowCallback,
)
from control.integration.mlflow_backlog import BACKLOG_FILE  # noqa: E402
from control.integration.param_flatten import TRUNCATION_MARKER  # noqa: E402
from control.training.run_folder import REPO_ROOT  # noqa: E402
from tests.mlflow_server import MlflowServer, free_port, mlflow_server, mlflow_server_factory  # noqa: E402,F401

pytestmark = pytest.mark.timeout(300)
LONG_VALUE = "w" * 7000  # longer than any MLflow server keeps


@pytest.fixture(autouse=True)
def no_tune_sigint_handler(monkeypatch):
    """Tune leaves its SIGINT handler (unpicklable) installed after fit(); later Tune runs in this process would carry it."""
    monkeypatch.setenv("TUNE_DISABLE_SIGINT_HANDLER", "1")


class CountingTrainable(tune.Trainable):
    """A stand-in for the PPO Algorithm: reports RLlib-shaped results and carries its counter on restore."""

    def setup(self, config: dict) -> None:
        # After a restore the training pipeline carries counters: iterations continue.
        self._iteration = int(config.get("start_iteration", 0))

    def step(self) -> dict:
        i = self._iteration + 1
        return {
            "env_runners": {
                "episode_return_mean": 10.0 * i,
                "episode_return_min": 1.0 * i,
                "episode_return_max": 20.0 * i,
                "lap_progress_mean": 5.0 * i,
                "num_env_steps_sampled": 200,
            },
            "learners": {"default_policy": {"policy_loss": -0.1 * i, "entropy": 1.0 / i, "mean_kl_loss": 0.01}},
        }

    def save_checkpoint(self, checkpoint_dir: str) -> dict:
        Path(checkpoint_dir, "weights.txt").write_text(f"iteration {self._iteration}\n")
        return {}

    def load_checkpoint(self, checkpoint: Any) -> None:
        pass


class StopServerAfter(tune.Callback):
    """Stops the tracking server after the result of `stop_after`; restarts it after `restart_after`."""

    def __init__(self, server: MlflowServer, stop_after: int, restart_after: int | None = None) -> None:
        self.server, self.stop_after, self.restart_after = server, stop_after, restart_after

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result["training_iteration"] == self.stop_after:
            self.server.stop()
        if result["training_iteration"] == self.restart_after:
            self.server.start()

    def __getstate__(self):
        # Tune pickles callbacks into its experiment state; a live process handle does not pickle.
        return {**self.__dict__, "server": None}


def resolved_config(start_iteration: int = 0) -> dict:
    return {
        "start_iteration": start_iteration,
        "lr": 0.0003,
        "model": {"conv_filters": [[16, [8, 8], 4], [32, [4, 4], 2]], "fcnet_hiddens": [64, 64]},
        "env_config": {"track": "oval", "note": LONG_VALUE, "observation": {"type": "vlidar", "num_rays": 11}},
    }


def run_tune(tmp_path: Path, callbacks: list, config: dict, iterations: int, name: str = "exp") -> tune.ResultGrid:
    tuner = tune.Tuner(
        CountingTrainable,
        param_space=config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(tmp_path / "tune"),
            stop={"training_iteration": config["start_iteration"] + iterations},
            callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=True),
            verbose=0,
        ),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    return results


def make_callback(uri: str, run_folder: Path, config: dict, **kwargs: Any) -> CustomMlflowCallback:
    return CustomMlflowCallback(
        tracking_uri=uri,
        experiment_name="test-racing",
        run_folder=run_folder,
        resolved_config=config,
        command_line="ppo_train.py --config cfg.yaml --mlflow_uri X",
        **kwargs,
    )


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_training_logs_params_config_metrics_and_resumes_same_run(ray_session, mlflow_server, tmp_path):
    run_folder = tmp_path / "results" / "run1"
    state_log = run_folder / "state_log"
    state_log.mkdir(parents=True)
    (state_log / "worker_0.csv").write_text("episode,steps,X,Y\n0,1,0.5,0.25\n")
    config = resolved_config()
    callback = make_callback(mlflow_server.url, run_folder, config, log_checkpoints=True, state_log_dir=state_log)
    run_tune(tmp_path, [callback], config, iterations=2)

    client = MlflowClient(mlflow_server.url)
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    run = client.get_run(run_id)
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert params["lr"] == "0.0003"
    assert params["model.conv_filters.1.1.0"] == "4"
    assert params["env_config.observation.num_rays"] == "11"
    note = params["env_config.note"]
    assert len(note) == 6000 and note.endswith(TRUNCATION_MARKER) and note.startswith("w" * 100)

    config_file = Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path / "dl")))
    assert yaml.safe_load(config_file.read_text()) == config
    artifacts = {a.path for a in client.list_artifacts(run_id, "config")}
    assert "config/command_line.txt" in artifacts
    assert [a.path for a in client.list_artifacts(run_id, "state_log")] == ["state_log/worker_0.csv"]
    assert client.list_artifacts(run_id, "checkpoint"), "final checkpoint not uploaded"

    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2]
    assert metric_steps(client, run_id, "learners/default_policy/entropy") == [1, 2]
    assert metric_steps(client, run_id, "throughput/env_steps_per_s") == [1, 2]

    # Restore: a new Tune run in the same run folder continues the same MLflow run.
    restored_config = resolved_config(start_iteration=2)
    run_tune(tmp_path, [make_callback(mlflow_server.url, run_folder, restored_config)], restored_config, 1, "exp2")
    assert (run_folder / RUN_ID_FILE).read_text().strip() == run_id
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2, 3]
    experiment = client.get_experiment_by_name("test-racing")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.run_folder = '{run_folder.resolve()}'")
    assert [r.info.run_id for r in runs] == [run_id]
    assert client.get_run(run_id).info.status == "FINISHED"
    resumed = [a.path for a in client.list_artifacts(run_id, "config") if a.is_dir]
    assert len(resumed) == 1 and resumed[0].startswith("config/resumed_")


def test_server_stopping_mid_run_does_not_fail_training(ray_session, mlflow_server_factory, tmp_path, caplog):
    server = mlflow_server_factory()
    run_folder = tmp_path / "run"
    config = resolved_config()
    callback = make_callback(server.url, run_folder, config, retry_interval_s=0.0)
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")
    # Stop after iteration 1, back after iteration 2: 2 is kept and sent with 3.
    results = run_tune(tmp_path, [callback, StopServerAfter(server, stop_after=1, restart_after=2)], config, 3)

    assert results[0].metrics["training_iteration"] == 3
    assert "unreachable" in caplog.text
    client = MlflowClient(server.url)
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2, 3]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_server_down_for_the_whole_run_costs_a_warning(ray_session, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    config = resolved_config()
    callback = make_callback(f"http://127.0.0.1:{free_port()}", tmp_path / "run", config)
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")
    results = run_tune(tmp_path, [callback], config, iterations=2)
    assert results[0].metrics["training_iteration"] == 2
    assert "unreachable" in caplog.text
    assert "not finalised" in caplog.text


def test_old_server_rejecting_long_values_gets_shorter_ones(ray_session, mlflow_server, tmp_path, monkeypatch, caplog):
    from mlflow.exceptions import RestException

    # Simulate an MLflow 1.x server at the client boundary: values over 500 characters refused.
    real_log_batch = MlflowClient.log_batch
    refused: list[int] = []

    def old_server_log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        too_long = [p for p in params if len(p.value) > 500]
        if too_long:
            refused.append(len(too_long[0].value))
            raise RestException(
                {
                    "error_code": "INVALID_PARAMETER_VALUE",
                    "message": f"Param value '{too_long[0].value[:20]}' had length {len(too_long[0].value)}, "
                    "which exceeded length limit of 500",
                }
            )
        return real_log_batch(self, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", old_server_log_batch)
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")
    run_folder = tmp_path / "run"
    config = resolved_config()
    callback = make_callback(mlflow_server.url, run_folder, config)
    run_tune(tmp_path, [callback], config, iterations=1)

    assert refused == [6000]  # one refusal, then every later batch fits
    assert callback.value_limit == 500
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    params = MlflowClient(mlflow_server.url).get_run(run_id).data.params
    assert len(params["env_config.note"]) == 500 and params["env_config.note"].endswith(TRUNCATION_MARKER)
    assert params["env_config.track"] == "oval" and params["lr"] == "0.0003"
    assert "retrying with values cut to 500" in caplog.text


def test_local_folder_uri_needs_no_server(ray_session, tmp_path):
    store = tmp_path / "mlstore"
    run_folder = tmp_path / "run"
    config = resolved_config()
    run_tune(tmp_path, [make_callback(str(store), run_folder, config)], config, iterations=1)

    assert (store / "mlflow.db").is_file()
    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    assert client.get_run(run_id).data.params["model.fcnet_hiddens.0"] == "64"
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1]
    config_file = Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path / "dl")))
    assert yaml.safe_load(config_file.read_text()) == config
    assert str(store / "mlartifacts") in client.get_run(run_id).info.artifact_uri



# ----------------------------------------------------------------------------- item 12: refusals and the backlog
class AssertDuringRun(tune.Callback):
    """Runs `check(iteration)` after each result, so a test sees what was true while training ran."""

    def __init__(self, check) -> None:
        self.check, self.seen = check, []

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.check(result["training_iteration"])
        self.seen.append(result["training_iteration"])

    def __getstate__(self):
        return {**self.__dict__, "check": None}


def test_artifact_store_refusing_uploads_keeps_params_and_metrics_and_the_backlog_sends_the_rest(
    ray_session, tmp_path_factory, tmp_path, caplog, monkeypatch
):
    # One retry, at once: a refused upload makes the server drop the connection, and the next request
    # on it needs its retry (as with MLflow's defaults) to not look like a server outage.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    folder = tmp_path_factory.mktemp("refusing_server")
    (folder / "not_a_folder").write_text("the artifact store cannot be created under a file\n")
    server = MlflowServer(folder, artifacts_destination=folder / "not_a_folder" / "artifacts").start()
    run_folder = tmp_path / "results" / "run1"
    config = resolved_config()
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")

    def refusal_already_reported(iteration: int) -> None:
        assert "artifact store refused" in caplog.text, f"no warning yet at iteration {iteration}"

    try:
        callback = make_callback(server.url, run_folder, config, retry_interval_s=0.0)
        checker = AssertDuringRun(refusal_already_reported)
        run_tune(tmp_path, [callback, checker], config, iterations=2)
        assert checker.seen == [1, 2]
        client = MlflowClient(server.url)
        run_id = (run_folder / RUN_ID_FILE).read_text().strip()
        run = client.get_run(run_id)
        assert run.data.params["lr"] == "0.0003" and run.data.params["env_config.observation.num_rays"] == "11"
        assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2]
        assert run.info.status == "FINISHED"
        assert "unreachable" not in caplog.text  # a refusing artifact store is not a down server
        backlog = [json.loads(line) for line in (run_folder / BACKLOG_FILE).read_text().splitlines()]
        assert {e["artifact_file"] for e in backlog if e["type"] == "text"} == {CONFIG_ARTIFACT, "config/command_line.txt"}
    finally:
        server.stop()

    # The store is fixed (same tracking database, a writable artifact folder): make mlflow_sync sends the rest.
    fixed = MlflowServer(folder, artifacts_destination=folder / "artifacts").start()
    try:
        # A process of its own, as `make mlflow_sync` runs it (MLflow caches each run's artifact store per process).
        sync = subprocess.run([sys.executable, "-m", "control.integration.mlflow_sync", "-n", "run1", "--results_dir",
                               str(tmp_path / "results"), "--mlflow_uri", fixed.url],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=240)  # fmt: skip
        assert sync.returncode == 0, sync.stderr
        assert "sent 2 artifacts" in sync.stdout
        client = MlflowClient(fixed.url)
        config_file = Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path / "dl")))
        assert yaml.safe_load(config_file.read_text()) == config
        assert not (run_folder / BACKLOG_FILE).exists()
    finally:
        fixed.stop()


def test_server_down_for_the_whole_run_leaves_a_backlog_that_the_next_restore_sends(
    ray_session, mlflow_server, tmp_path, caplog, monkeypatch, capsys
):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # A small in-memory queue: the second iteration's metrics go to disk while training runs.
    monkeypatch.setattr(mlflow_callback, "MAX_PENDING_METRICS", 25)
    run_folder = tmp_path / "results" / "run1"
    config = resolved_config()
    down = make_callback(f"http://127.0.0.1:{free_port()}", run_folder, config)
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")

    def spilled_at_once(iteration: int) -> None:
        if iteration == 2:
            assert "moved to" in caplog.text and (run_folder / BACKLOG_FILE).is_file()
            assert all(len(s.pending_metrics) <= 25 for s in down._runs.values())

    run_tune(tmp_path, [down, AssertDuringRun(spilled_at_once)], config, iterations=2)
    assert "not finalised" in caplog.text and BACKLOG_FILE in caplog.text
    assert not (run_folder / RUN_ID_FILE).exists()  # the run was never created

    # Sync against a down server: a one-line error, the backlog untouched.
    before = (run_folder / BACKLOG_FILE).read_text()
    assert mlflow_sync.main(["-n", "run1", "--results_dir", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: MLflow at http://127.0.0.1:") and "still kept" in err[0]
    assert (run_folder / BACKLOG_FILE).read_text() == before

    # The restore (server up now) starts with the backlog: one run, every iteration in order.
    restored = resolved_config(start_iteration=2)
    run_tune(tmp_path, [make_callback(mlflow_server.url, run_folder, restored)], restored, 1, "exp2")
    client = MlflowClient(mlflow_server.url)
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2, 3]
    assert metric_steps(client, run_id, "learners/default_policy/entropy") == [1, 2, 3]
    run = client.get_run(run_id)
    assert run.data.params["lr"] == "0.0003" and run.info.status == "FINISHED"
    config_file = Path(client.download_artifacts(run_id, CONFIG_ARTIFACT, str(tmp_path / "dl")))
    assert yaml.safe_load(config_file.read_text()) == config  # the first training's config, as a fresh run's
    assert not (run_folder / BACKLOG_FILE).exists()
    experiment = client.get_experiment_by_name("test-racing")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.run_folder = '{run_folder.resolve()}'")
    assert [r.info.run_id for r in runs] == [run_id]


# ----------------------------------------------------------------------------- item 6: no credentials pickled or logged
def test_credentials_in_the_uri_are_never_pickled_written_or_logged(ray_session, mlflow_server, tmp_path, monkeypatch):
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # restored after the test: the callback sets them
    uri = mlflow_server.url.replace("http://", "http://bob:s3cret@")
    run_folder = tmp_path / "results" / "run1"
    config = resolved_config()
    callback = CustomMlflowCallback(
        tracking_uri=uri, experiment_name="test-secrets", run_folder=run_folder, resolved_config=config,
        command_line=f"ppo_train.py cfg.yaml --mlflow_uri {uri} --set env_config.carla.password=hunter2",
    )  # fmt: skip
    assert b"s3cret" not in pickle.dumps(callback)
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == "s3cret"  # where MLflow's client reads it

    run_tune(tmp_path, [callback], config, iterations=1)
    client = MlflowClient(mlflow_server.url)
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    run = client.get_run(run_id)
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1]  # it did log, with the credentials
    tag = run.data.tags["command_line"]
    command = Path(client.download_artifacts(run_id, "config/command_line.txt", str(tmp_path / "dl"))).read_text()
    for text in (tag, command):
        assert "s3cret" not in text and "hunter2" not in text
        assert "--mlflow_uri http://bob:***@127.0.0.1:" in text
    # Tune's experiment state (the pickled callbacks) and the run folder hold the secret nowhere.
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and b"s3cret" in p.read_bytes()]
    assert leaks == []
    assert b"s3cret" not in pickle.dumps(callback)


def test_a_backlog_the_server_refuses_is_kept_and_does_not_hold_back_the_run(ray_session, mlflow_server, tmp_path, caplog):
    run_folder = tmp_path / "results" / "run1"
    run_folder.mkdir(parents=True)
    stranger = {"type": "metrics", "run_index": 0, "run_id": "0123456789abcdef0123456789abcdef",
                "metrics": [["env_runners/episode_return_mean", 1.0, 1000, 1]]}  # a run this server does not have
    (run_folder / BACKLOG_FILE).write_text(json.dumps(stranger) + "\n")
    caplog.set_level(logging.WARNING, logger="control.integration.callbacks.mlflow_callback")
    config = resolved_config()
    run_tune(tmp_path, [make_callback(mlflow_server.url, run_folder, config)], config, iterations=2)

    client = MlflowClient(mlflow_server.url)
    run_id = (run_folder / RUN_ID_FILE).read_text().strip()
    assert metric_steps(client, run_id, "env_runners/episode_return_mean") == [1, 2]
    assert "refused the backlog" in caplog.text
    assert json.loads((run_folder / BACKLOG_FILE).read_text().splitlines()[0]) == stranger  # kept, not dropped


def test_rollout_upload_error_names_the_server_without_its_password(tmp_path, monkeypatch):
    from control.errors import UserError
    from control.rollout.mlflow_upload import upload_rollout

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError) as error:
        upload_rollout(f"http://bob:s3cret@127.0.0.1:{free_port()}", None, tmp_path / "out", {"laps": 1})
    assert "s3cret" not in str(error.value) and "bob:***@127.0.0.1" in str(error.value)
