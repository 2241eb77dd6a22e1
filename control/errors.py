"""Errors a user can cause. Each carries a one-line message: what, where, and what would be right."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Base for errors the CLI prints as one line, without a traceback, exiting non-zero."""


class ConfigError(UserError, ValueError):
    """A configuration key or value that cannot be used."""


class TrackFileError(UserError, ValueError):
    """A track file or track name that cannot be loaded."""


class RewardFunctionError(UserError, RuntimeError):
    """A reward function that raised or returned a non-finite value."""


class CheckpointError(UserError, FileNotFoundError):
    """A checkpoint that is missing, is not a checkpoint, or does not fit the env."""


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest valid name, or '' when none is close."""
    match = difflib.get_close_matches(str(name), sorted(set(map(str, valid))), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def unknown_key_error(key: str, valid: Iterable[str], where: str) -> ConfigError:
    """The standard error for a key that is not one of `valid`."""
    valid = sorted(set(map(str, valid)))
    hint = did_you_mean(key, valid)
    if not hint:
        shown = ", ".join(valid[:12]) + (", ..." if len(valid) > 12 else "")
        hint = f"; valid keys: {shown}"
    return ConfigError(f"unknown key '{key}' in {where}{hint}")
