"""Config sections as pydantic models: one schema mechanism for every section, one-line errors.

A section is a `Section` subclass: each field has its default and a description (with its
unit), and a key the section does not declare is an error (`extra="forbid"`). Values are
never coerced: a bool is not a number, "2000" is not a port. `parse_section(Model, data,
where)` validates a mapping and turns pydantic's ValidationError into the project's one-line
ConfigError: `unknown key 'num_ray' in env_config.observation (did you mean 'num_rays'?)`,
`env_config.max_episode_steps must be a positive integer, got 0`. A field says in words what a
right value is with `Expect("...")` in its `Annotated` metadata; a validator may raise a
ValueError whose text is that phrase, an `Invalid` whose text follows the field's place, or a
UserError with its own full line.

`python -m control.tools.config_tables` prints the README's defaults tables, built from the models.
"""
from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError

from control.errors import ConfigError, UserError, did_you_mean, unknown_key_error


@dataclass(frozen=True)
class Expect:
    """What a right value of a field is, in words ("a positive number"): the error says it."""

    text: str


class ChoiceError(ValueError):
    """A value that is not one of a field's choices (the error names the closest one)."""

    def __init__(self, choices: tuple[str, ...]) -> None:
        super().__init__(f"one of {', '.join(choices)}")
        self.choices = choices


def one_of(*choices: str) -> AfterValidator:
    """A validator accepting exactly one of `choices`; any other value is a ChoiceError."""
    def check(value: str) -> str:
        if value not in choices:
            raise ChoiceError(choices)
        return value

    return AfterValidator(check)


class Invalid(ValueError):
    """A validator's complaint that reads after the field's place: '<where>.<key>: <text>'."""


class Section(BaseModel):
    """A config section: declared keys only, values checked without coercion."""

    model_config = ConfigDict(extra="forbid", validate_default=False)
    # How an error names a value's place and shows it (a section may read differently, e.g. PPO settings).
    place_format: ClassVar[str] = "{where}.{path}"
    error_format: ClassVar[str] = "{place} must be {expected}, got {value!r}"


S = TypeVar("S", bound=Section)

# Building blocks: strict (no "2" -> 2, no True -> 1), finite numbers.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False), Expect("a number")]
Whole = Annotated[int, Strict(), Expect("a whole number")]
Flag = Annotated[bool, Strict(), Expect("true or false")]
Text = Annotated[str, Strict(), Expect("a string")]
PositiveNumber = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False), Expect("a positive number")]
NonNegativeNumber = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False), Expect("a number >= 0")]
PositiveWhole = Annotated[int, Strict(), Field(ge=1), Expect("a positive integer")]
NonNegativeWhole = Annotated[int, Strict(), Field(ge=0), Expect("a whole number >= 0")]

# Phrases for pydantic's error types when a field names none.
_PHRASES = {
    "int_type": "a whole number", "int_from_float": "a whole number", "float_type": "a number",
    "finite_number": "a finite number", "bool_type": "true or false", "string_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _section_of(annotation: Any) -> type[Section] | None:
    """The Section class an annotation holds (X, X | None, Annotated[X, ...], list[X]), or None."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Annotated:
        return _section_of(args[0])
    if origin in (typing.Union, types.UnionType, list, tuple):
        for arg in args:
            found = _section_of(arg)
            if found is not None:
                return found
    return None


def _expect_of(field: Any) -> str | None:
    """The Expect phrase in a field's metadata (the outermost one), or None."""
    found = [item.text for item in getattr(field, "metadata", ()) if isinstance(item, Expect)]
    return found[-1] if found else None


def _walk(model: type[Section], loc: tuple, data: Any) -> tuple[list, type[Section] | None, Any, Any]:
    """For an error's loc: (path of the deepest known field, the section its value is (or None), its FieldInfo, its value)."""
    path: list = []
    current: type[Section] | None = model
    field, value = None, data
    for part in loc:
        if isinstance(part, int) and isinstance(value, list):
            path.append(part)  # an item of a list field: its section (if any) answers next
            value = value[part] if part < len(value) else None
        elif current is not None and isinstance(part, str) and part in current.model_fields:
            field = current.model_fields[part]
            path.append(part)
            value = value.get(part) if isinstance(value, Mapping) else None
            current = _section_of(field.annotation)
        else:
            break  # a union branch tag, a mapping key or an unknown key: what was found so far answers
    return path, current, field, value


def _location(where: str, path: list, model: type[Section] = Section) -> str:
    """The place of `path` in section `where`, as the section's place_format writes it."""
    text = "".join(f".{p}" if isinstance(p, str) else f"[{p}]" for p in path).removeprefix(".")
    return model.place_format.format(where=where, path=text) if text else where


def config_error(exc: ValidationError, model: type[Section], data: Mapping[str, Any], where: str) -> UserError:
    """The one-line error for the first thing pydantic found wrong in section `where`."""
    err = exc.errors(include_url=False)[0]
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, UserError):  # a validator's own line (a track file that does not load, ...)
        return cause
    loc = tuple(err["loc"])
    if err["type"] in ("extra_forbidden", "missing"):
        path, section, _, _ = _walk(model, loc[:-1], data)
        key = str(loc[-1])
        if err["type"] == "missing" and section is not None:
            meaning = section.model_fields[key].description
            return ConfigError(f"{_location(where, path, model)} is missing {key}" + (f" ({meaning})" if meaning else ""))
        return unknown_key_error(key, section.model_fields if section else (), _location(where, path, model))
    path, _, field, value = _walk(model, loc, data)
    if isinstance(cause, ChoiceError):
        return ConfigError(f"{_location(where, path, model)} is {value!r}{did_you_mean(str(value), cause.choices)}; "
                           f"expected one of {', '.join(cause.choices)}")
    if isinstance(cause, Invalid):
        return ConfigError(f"{_location(where, path, model)}: {cause}")
    if isinstance(cause, ValueError) and str(cause):
        expected = str(cause)
    else:
        expected = _expect_of(field) or _PHRASES.get(err["type"])
    shown = value if field is not None else err.get("input")
    place = _location(where, path, model)
    if expected is None:  # pydantic's own words, when the field says none
        return ConfigError(f"{place}: {err['msg']}, got {shown!r}")
    return ConfigError(model.error_format.format(place=place, expected=expected, value=shown))


def parse_section(model: type[S], data: Mapping[str, Any] | None, where: str) -> S:
    """`data` validated as `model` (defaults filled in); anything wrong is a one-line ConfigError naming it."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of settings, got {data!r}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error(exc, model, data, where) from None


def defaults_of(model: type[Section]) -> dict[str, Any]:
    """The section's defaults as a plain dict (nested sections as dicts); no validator runs (nothing is imported)."""
    return model.model_construct().model_dump()


def _yaml_value(value: Any) -> str:
    """A default as it reads in YAML: null, true, [20, 60], {a: 1}."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_yaml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def defaults_table(model: type[Section]) -> str:
    """A Markdown table of the section's keys: key, default, meaning (the field's description)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    defaults = defaults_of(model)
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        shown = extra.get("shown_default") or f"`{_yaml_value(defaults[name])}`"  # a long default says it in words
        rows.append(f"| `{name}` | {shown} | {(field.description or '').replace('|', '/')} |")
    return "\n".join(rows)
