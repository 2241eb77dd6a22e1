"""Credentials out of everything the project writes: command lines, configs, URIs, tags.

A secret is (1) the password of a URL's userinfo (`http://user:pw@host`), or (2) the value of a
setting whose name says it is one (`*_TOKEN`, `*_PASSWORD`, `*_SECRET`, `*_API_KEY`, `*_KEY`
with a prefix, `password`, `token`, ...), whether it is written `NAME=value`, `--name value`,
`--name=value` or as a mapping key. Secrets become `***`; everything else is kept as it was,
so a redacted command line still says what was run.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Names that hold secrets: the whole name, or its last `_`/`-`/`.` separated part.
_SECRET_NAME_RE = re.compile(
    r"(^|[_\-.])(password|passwd|pwd|token|secret|api[_\-]?key|access[_\-]?key|secret[_\-]?key|private[_\-]?key|credentials?)$",
    re.IGNORECASE,
)
# scheme://user:password@host -> scheme://user:***@host (also user-only tokens: scheme://TOKEN@host).
_URL_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")
# NAME=value anywhere in a string (an env assignment, a --set override, a query parameter).
_ASSIGNMENT_RE = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>[^\s&;]+)")


def is_secret_name(name: str) -> bool:
    """True when a setting called `name` holds a credential (MLFLOW_TRACKING_PASSWORD, api_key, token...)."""
    return bool(_SECRET_NAME_RE.search(str(name).strip().lstrip("-")))


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    if ":" in userinfo:
        user, _ = userinfo.split(":", 1)
        return f"{match.group('scheme')}{user}:{MASK}@"
    # A lone userinfo is usually a token (https://TOKEN@host): mask it too.
    return f"{match.group('scheme')}{MASK}@" if userinfo else match.group(0)


def redact_url(url: str) -> str:
    """`url` with the password (or a lone token) of its userinfo replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    if not parts.netloc or "@" not in parts.netloc:
        return redact_text(url)
    userinfo, host = parts.netloc.rsplit("@", 1)
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    masked = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    return redact_text(urlunsplit(parts._replace(netloc=masked)))


def redact_text(text: str) -> str:
    """Any string with URL passwords and `SECRET_NAME=value` assignments masked."""
    text = _URL_USERINFO_RE.sub(_mask_userinfo, str(text))

    def _assignment(match: re.Match[str]) -> str:
        if is_secret_name(match.group("name")):
            return f"{match.group('name')}={MASK}"
        return match.group(0)

    return _ASSIGNMENT_RE.sub(_assignment, text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with secrets masked: URL passwords, `--password X`, `--token=X`, `KEY_TOKEN=X`."""
    out: list[str] = []
    mask_next = False
    for arg in argv:
        arg = str(arg)
        if mask_next:
            out.append(MASK)
            mask_next = False
            continue
        if arg.startswith("-") and "=" not in arg and is_secret_name(arg):
            out.append(arg)
            mask_next = True
            continue
        if arg.startswith("-") and "=" in arg:
            flag, value = arg.split("=", 1)
            out.append(f"{flag}={MASK}" if is_secret_name(flag) else f"{flag}={redact_text(value)}")
            continue
        out.append(redact_text(arg))
    return out


def redact_mapping(value: Any) -> Any:
    """A deep copy of a config (dicts, lists, strings) with secret-named keys and URL passwords masked."""
    if isinstance(value, Mapping):
        return {k: (MASK if is_secret_name(str(k)) and v not in (None, "") else redact_mapping(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_mapping(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value
