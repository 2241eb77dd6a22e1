"""Config sections chosen by a `type` key (observation, action): the shared key checks."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from control.errors import ConfigError, did_you_mean, unknown_key_error

T = TypeVar("T")


def pick_type(config: Mapping[str, Any] | None, registry: Mapping[str, T], section: str, default: str) -> T:
    """The class registered under config['type']; an unknown type is a ConfigError with a suggestion."""
    kind = (config or {}).get("type", default)
    if kind not in registry:
        raise ConfigError(
            f"env_config.{section}.type is {kind!r}{did_you_mean(str(kind), registry)}; expected one of {', '.join(registry)}"
        )
    return registry[kind]


def merge_section(config: Mapping[str, Any], defaults: Mapping[str, Any], section: str) -> dict[str, Any]:
    """`defaults` updated with `config` (minus `type`); a key the type does not know is a ConfigError."""
    where = f"env_config.{section} (type {config.get('type')})"
    for key in config:
        if key != "type" and key not in defaults:
            raise unknown_key_error(key, [*defaults, "type"], where)
    return {**defaults, **{k: v for k, v in config.items() if k != "type"}}
