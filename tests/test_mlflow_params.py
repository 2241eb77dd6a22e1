"""Config -> MLflow params: flattening, key naming, truncation, limits ladder, tracking URIs."""
from __future__ import annotations

from pathlib import Path

import pytest

from control.errors import ConfigError
from control.integration.callbacks.mlflow_callback import config_to_yaml, is_length_rejection, metrics_from_result
from control.integration.mlflow_uri import default_tracking_uri, resolve_tracking_uri, uri_without_credentials
from control.integration.param_flatten import (
    MAX_KEY_LENGTH,
    TRUNCATION_MARKER,
    batches,
    flatten_config,
    mlflow_params,
    next_value_limit,
    sanitize_key,
    truncate_value,
)


def test_flatten_expands_dicts_and_lists_to_dotted_keys():
    config = {
        "lr": 0.0003,
        "model": {"conv_filters": [[16, [8, 8], 4], [32, [4, 4], 2]], "fcnet_hiddens": [64, 64]},
        "env_config": {"observation": {"type": "vlidar"}, "start": {}, "carla": None},
    }
    flat = flatten_config(config)
    assert flat["lr"] == "0.0003"
    assert flat["model.conv_filters.0.0"] == "16"
    assert flat["model.conv_filters.1.1.0"] == "4"
    assert flat["model.fcnet_hiddens.1"] == "64"
    assert flat["env_config.observation.type"] == "vlidar"
    # empty containers and None are kept, not dropped
    assert flat["env_config.start"] == "{}"
    assert flat["env_config.carla"] == "None"


def test_long_list_stays_one_value():
    waypoints = [[float(i), float(-i)] for i in range(500)]
    flat = flatten_config({"track": {"waypoints": waypoints}}, max_list_items=64)
    assert list(flat) == ["track.waypoints"]
    assert flat["track.waypoints"].startswith("[[0.0, 0.0], [1.0, -1.0]")


def test_truncate_value_marks_the_cut_and_respects_the_limit():
    assert truncate_value("short", 250) == "short"
    cut = truncate_value("x" * 7000, 6000)
    assert len(cut) == 6000
    assert cut.endswith(TRUNCATION_MARKER)
    assert cut.startswith("x" * 100)


def test_long_keys_are_shortened_deterministically_and_uniquely():
    key_a = "a." * 200 + "first"
    key_b = "a." * 200 + "second"
    short_a, short_b = sanitize_key(key_a), sanitize_key(key_b)
    assert len(short_a) <= MAX_KEY_LENGTH and len(short_b) <= MAX_KEY_LENGTH
    assert short_a != short_b
    assert sanitize_key(key_a) == short_a  # deterministic across calls
    assert sanitize_key("model.fcnet_hiddens.0") == "model.fcnet_hiddens.0"  # valid keys untouched


@pytest.mark.parametrize("key", ["reward$weights", "a//b", "/lead", "trail/", "..x", "", "x{1}"])
def test_invalid_key_characters_become_valid_names(key):
    from mlflow.utils.validation import path_not_unique, validate_param_and_metric_name

    clean = sanitize_key(key)
    assert validate_param_and_metric_name(clean)
    assert not path_not_unique(clean)


def test_cleaned_keys_do_not_collide():
    params, renamed = mlflow_params({"a$b": 1, "a%b": 2, "a_b": 3})
    assert len(params) == 3
    assert params["a_b"] == "3"
    assert sorted(renamed.values()) == ["a$b", "a%b"]


def test_batches_hold_at_most_100():
    sizes = [len(b) for b in batches(list(range(250)))]
    assert sizes == [100, 100, 50]


def test_value_limit_ladder_follows_the_server():
    assert next_value_limit(6000) == 500
    assert next_value_limit(500) == 250
    assert next_value_limit(250) is None
    # a limit the server states is used directly
    assert next_value_limit(6000, "Param value 'x' had length 700, which exceeded length limit of 300") == 300


def test_length_rejection_is_recognised_only_for_values():
    from mlflow.exceptions import RestException

    old = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "Param value 'x' had length 600, which exceeded length limit of 500"})
    new = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "'Param value' exceeds the maximum length of 6000 characters"})
    key = RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "'Param key' exceeds the maximum length of 250 characters"})
    assert is_length_rejection(old) and is_length_rejection(new)
    assert not is_length_rejection(key)


def test_metrics_from_result_keeps_numbers_and_adds_throughput():
    result = {
        "training_iteration": 3,
        "time_this_iter_s": 2.0,
        "done": False,
        "pid": 1234,
        "trial_id": "abc",
        "config": {"lr": 0.1},
        "env_runners": {"episode_return_mean": 1.5, "num_env_steps_sampled": 400, "lap_progress_mean": 12.0},
        "learners": {"default_policy": {"entropy": 0.7, "policy_loss": -0.1}},
        "evaluation": {"env_runners": {"episode_return_mean": 2.5}},
    }
    metrics = metrics_from_result(result)
    assert metrics["env_runners/episode_return_mean"] == 1.5
    assert metrics["learners/default_policy/entropy"] == 0.7
    assert metrics["evaluation/env_runners/episode_return_mean"] == 2.5
    assert metrics["throughput/env_steps_per_s"] == 200.0
    assert not {"done", "pid", "trial_id", "config/lr"} & set(metrics)


def test_config_yaml_round_trips():
    import numpy as np
    import yaml

    config = {"lr": 1e-4, "model": {"conv_filters": [[16, [8, 8], 4]]}, "name": "x", "arr": np.arange(3)}
    assert yaml.safe_load(config_to_yaml(config)) == {**config, "arr": [0, 1, 2]}


def test_tracking_uris(tmp_path: Path):
    assert default_tracking_uri(tmp_path / "results") == f"sqlite:///{tmp_path}/results/mlflow.db"
    folder = resolve_tracking_uri(str(tmp_path / "store"))
    assert folder.tracking_uri == f"sqlite:///{tmp_path}/store/mlflow.db"
    assert folder.artifact_location == str(tmp_path / "store" / "mlartifacts")
    assert resolve_tracking_uri(f"file://{tmp_path}/store") == folder
    assert resolve_tracking_uri("http://127.0.0.1:5000").tracking_uri == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("http://127.0.0.1:5000").artifact_location is None
    with pytest.raises(ConfigError, match="scheme 's3'"):
        resolve_tracking_uri("s3://bucket/x")
    assert uri_without_credentials("https://me:secret@mlflow.example.com/x") == "https://mlflow.example.com/x"
