"""Joining a Ray cluster at --address sends this machine's Ray auth token, as `ray start --head` expects.

Each case runs in a fresh interpreter: turning token auth on changes Ray's process-wide config, which
would break a Ray session that other tests in this process share.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROBE = ("import os; from control.training.cli import _use_the_local_ray_token; _use_the_local_ray_token(); "
         "print(os.environ.get('RAY_AUTH_MODE', 'unset'))")


def auth_mode_after_join(home: Path, token: bool, mode: str | None = None) -> str:
    """RAY_AUTH_MODE after the join's token step, in a fresh interpreter with HOME=home (a token file or not)."""
    if token:
        (home / ".ray").mkdir(exist_ok=True)
        (home / ".ray" / "auth_token").write_text("a" * 64)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env.update({"HOME": str(home), **({"RAY_AUTH_MODE": mode} if mode else {})})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_a_token_on_this_machine_turns_token_auth_on_for_the_join(tmp_path):
    assert auth_mode_after_join(tmp_path, token=True) == "token"


def test_without_a_token_nothing_changes(tmp_path):
    assert auth_mode_after_join(tmp_path, token=False) == "unset"


@pytest.mark.parametrize("mode", ["disabled", "token"])
def test_an_explicit_mode_is_kept(tmp_path, mode):
    assert auth_mode_after_join(tmp_path, token=True, mode=mode) == mode
