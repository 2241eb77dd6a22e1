"""Turn a nested config into MLflow params: dotted keys, valid names, values within the server's limit."""
from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

# MLflow's limits (mlflow.utils.validation): keys <= 250 characters; values <= 6000 on
# current servers (older ones: 500, and 250 before that); <= 100 params per log_batch.
MAX_KEY_LENGTH = 250
VALUE_LENGTH_LADDER = (6000, 500, 250)
MAX_PARAMS_PER_BATCH = 100
TRUNCATION_MARKER = "...[truncated]"
# Longer lists (waypoints, big arrays) stay one value: thousands of params help no one,
# and the full value is in the config artifact anyway.
MAX_LIST_ITEMS = 64

_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")
_HASH_LENGTH = 10


def flatten_config(config: Mapping[str, Any], max_list_items: int = MAX_LIST_ITEMS) -> dict[str, str]:
    """Flatten nested dicts and lists into {"a.b.0.c": "value"}; every leaf kept as a string."""
    flat: dict[str, str] = {}
    _flatten_into(flat, "", config, max_list_items)
    return flat


def _flatten_into(flat: dict[str, str], prefix: str, value: Any, max_list_items: int) -> None:
    if isinstance(value, Mapping) and value:
        for key, child in value.items():
            _flatten_into(flat, f"{prefix}.{key}" if prefix else str(key), child, max_list_items)
    elif _is_list(value) and value and len(value) <= max_list_items:
        for index, child in enumerate(value):
            _flatten_into(flat, f"{prefix}.{index}" if prefix else str(index), child, max_list_items)
    else:
        flat[prefix] = value_to_text(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def value_to_text(value: Any) -> str:
    """A leaf as text: strings unchanged, containers as JSON, anything else via str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) or _is_list(value):
        return json.dumps(_jsonable(value), separators=(", ", ": "))
    return str(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if _is_list(value):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def truncate_value(value: str, limit: int) -> str:
    """`value` if it fits in `limit` characters, else its head followed by TRUNCATION_MARKER."""
    if len(value) <= limit:
        return value
    return value[: max(limit - len(TRUNCATION_MARKER), 0)] + TRUNCATION_MARKER


def short_hash(text: str) -> str:
    """A short, stable hash of `text` (hex)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:_HASH_LENGTH]


def sanitize_key(key: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """A name MLflow accepts for `key`; a changed or too-long key gets a hash of the original."""
    clean = _INVALID_KEY_CHARS.sub("_", key)
    if _is_not_unique_path(clean):
        clean = clean.replace("/", "_")
    if clean == "" or _is_not_unique_path(clean):
        clean = f"_{clean}"
    if clean != key:
        # Cleaning can map two keys to one ('a$b', 'a%b'): the original's hash keeps them apart.
        clean = f"{clean}-{short_hash(key)}"
    if len(clean) > max_length:
        clean = f"{clean[: max_length - _HASH_LENGTH - 1]}-{short_hash(key)}"
    return clean


def _is_not_unique_path(name: str) -> bool:
    # MLflow treats names as paths and refuses '/a', 'a//b', 'a/./b', 'a/', '.', '..x'.
    norm = posixpath.normpath(name)
    return norm != name or norm == "." or norm.startswith("..") or norm.startswith("/")


def mlflow_params(
    config: Mapping[str, Any], max_list_items: int = MAX_LIST_ITEMS
) -> tuple[dict[str, str], dict[str, str]]:
    """(full-length params under valid unique keys, {mlflow key: original dotted key} for changed keys).

    Values are not truncated here: the limit is the server's, found while logging
    (see truncate_value and next_value_limit).
    """
    params: dict[str, str] = {}
    renamed: dict[str, str] = {}
    for key, value in flatten_config(config, max_list_items).items():
        mlflow_key = sanitize_key(key)
        if mlflow_key in params:  # a cleaned key that equals a real one: make it unique
            mlflow_key = sanitize_key(f"{mlflow_key[: MAX_KEY_LENGTH - _HASH_LENGTH - 1]}-{short_hash(key)}")
        if mlflow_key != key:
            renamed[mlflow_key] = key
        params[mlflow_key] = value
    return params, renamed


def batches(items: Sequence[Any], size: int = MAX_PARAMS_PER_BATCH) -> list[Sequence[Any]]:
    """`items` in consecutive chunks of at most `size`."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def next_value_limit(current: int, server_message: str = "") -> int | None:
    """The next shorter value limit to try after a server refused `current`; None when none is left."""
    stated = re.search(r"(?:limit of|maximum length of)\s+(\d+)", server_message)
    if stated and int(stated.group(1)) < current:
        return int(stated.group(1))
    shorter = [limit for limit in VALUE_LENGTH_LADDER if limit < current]
    return shorter[0] if shorter else None
