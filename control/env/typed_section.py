"""Config sections chosen by a `type` key (observation, action): the type lookup and its model's check."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from control.config_schema import Section, parse_section
from control.errors import ConfigError, did_you_mean

T = TypeVar("T")


def pick_type(config: Mapping[str, Any] | None, registry: Mapping[str, T], section: str, default: str) -> T:
    """The class registered under config['type']; an unknown type is a ConfigError with a suggestion."""
    kind = (config or {}).get("type", default)
    if kind not in registry:
        raise ConfigError(
            f"env_config.{section}.type is {kind!r}{did_you_mean(str(kind), registry)}; expected one of {', '.join(registry)}"
        )
    return registry[kind]


def parse_typed_section(config: Mapping[str, Any], settings: type[Section], section: str) -> dict[str, Any]:
    """The type's settings model filled from `config` (minus `type`), as a dict; a bad key or value is a ConfigError."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"env_config.{section} must be a mapping with a `type` key, got {config!r}")
    given = {k: v for k, v in config.items() if k != "type"}
    return parse_section(settings, given, f"env_config.{section}").model_dump()
