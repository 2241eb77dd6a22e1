"""Joining a Ray cluster at --address sends this machine's Ray auth token, as `ray start --head` expects."""
from __future__ import annotations

import os

import pytest

from control.training.cli import _use_the_local_ray_token


@pytest.fixture()
def home(tmp_path, monkeypatch):
    """A HOME of our own, RAY_AUTH_MODE unset, Ray's token cache cleared before and after."""
    from ray._raylet import AuthenticationTokenLoader, Config

    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    AuthenticationTokenLoader.instance().reset_cache()
    yield tmp_path
    os.environ.pop("RAY_AUTH_MODE", None)
    Config.initialize("")  # the process's cached Ray config back to the environment's mode
    AuthenticationTokenLoader.instance().reset_cache()


def test_a_token_on_this_machine_turns_token_auth_on_for_the_join(home):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("a" * 64)
    _use_the_local_ray_token()
    assert os.environ.get("RAY_AUTH_MODE") == "token"


def test_without_a_token_nothing_changes(home):
    _use_the_local_ray_token()
    assert "RAY_AUTH_MODE" not in os.environ


def test_an_explicit_mode_is_kept(home, monkeypatch):
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("a" * 64)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _use_the_local_ray_token()
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
