"""Credentials never reach what the project writes: command lines, configs, URIs."""
from __future__ import annotations

import pytest

from control.redact import MASK, is_secret_name, redact_argv, redact_mapping, redact_url


def test_url_password_is_masked_and_user_and_host_kept():
    assert redact_url("http://bob:s3cret@mlflow.example.com:5000/x") == f"http://bob:{MASK}@mlflow.example.com:5000/x"
    assert redact_url("https://TOKEN123@host/repo") == f"https://{MASK}@host/repo"
    assert redact_url("sqlite:///results/mlflow.db") == "sqlite:///results/mlflow.db"


@pytest.mark.parametrize(
    "argv",
    [
        ["--mlflow_uri", "http://bob:s3cret@127.0.0.1:5000"],
        ["--mlflow_uri=http://bob:s3cret@127.0.0.1:5000"],
        ["--set", "env_config.carla.api_token=s3cret"],
        ["--password", "s3cret"],
        ["--token=s3cret"],
        ["MLFLOW_TRACKING_PASSWORD=s3cret", "python", "ppo_train.py"],
    ],
)
def test_command_line_secrets_are_masked(argv):
    out = redact_argv(argv)
    assert not any("s3cret" in a for a in out), out
    assert len(out) == len(argv)


def test_ordinary_arguments_are_kept():
    argv = ["resources/configs/ppo_vlidar_config.yaml", "-n", "v1", "--set", "lr=1e-4", "--stop_duration", "10m"]
    assert redact_argv(argv) == argv


def test_config_mapping_secret_keys_and_urls_masked_deeply():
    config = {"env_config": {"carla": {"password": "s3cret", "host": "10.0.0.5"}}, "uris": ["http://u:s3cret@h"], "lr": 1e-4}
    out = redact_mapping(config)
    assert "s3cret" not in repr(out)
    assert out["env_config"]["carla"]["host"] == "10.0.0.5" and out["lr"] == 1e-4


def test_secret_names():
    assert is_secret_name("MLFLOW_TRACKING_TOKEN") and is_secret_name("api_key") and is_secret_name("password")
    assert not is_secret_name("num_rays") and not is_secret_name("monkey") and not is_secret_name("stop_progress")
