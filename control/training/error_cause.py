"""The project's own error behind a training failure, wherever in Ray it was raised.

RLlib wraps an env runner's exception (`raise RuntimeError from e`), Ray ships it to the
driver as a RayTaskError/RayActorError (pickling drops `__cause__`), and Tune may hand back
a TuneError holding only the remote traceback as text. The one line a user needs is the
UserError at the bottom of that chain: found as an object when it survived, else parsed
from the traceback text (`control.errors.RewardFunctionError: reward function raised ...`).
"""
from __future__ import annotations

import errno
import re
import shutil
import traceback
from collections.abc import Iterator
from pathlib import Path

from control.errors import UserError

# `module.path.ClassName: message` as the traceback module prints an exception's last line.
_EXCEPTION_LINE_RE = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<cls>[A-Za-z_]\w*): (?P<message>.+)$")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
_MAX_CHAIN = 50  # a cause chain longer than this is a cycle or not worth walking


def user_error_classes() -> dict[str, type[UserError]]:
    """Every UserError subclass by class name (the ones a traceback line can name)."""
    found: dict[str, type[UserError]] = {UserError.__name__: UserError}
    pending = [UserError]
    while pending:
        for sub in pending.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            pending.append(sub)
    return found


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and contexts, and Ray's `.cause` (the remote exception), each once."""
    pending = [error]
    seen: set[int] = set()
    while pending and len(seen) < _MAX_CHAIN:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (getattr(current, "cause", None), current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)


def _texts(error: BaseException) -> Iterator[str]:
    """What a chain says in words: messages and formatted tracebacks (remote ones are text only)."""
    for link in _chain(error):
        yield str(link)
        yield "".join(traceback.format_exception(type(link), link, link.__traceback__))
        remote = getattr(link, "traceback_str", None)  # RayTaskError keeps the remote traceback here
        if isinstance(remote, str):
            yield remote


def parse_user_error(text: str) -> UserError | None:
    """The first (innermost) project error named in a traceback text, rebuilt from its message."""
    classes = user_error_classes()
    for line in _ANSI_RE.sub("", text).splitlines():
        match = _EXCEPTION_LINE_RE.match(line.strip())
        if match and match.group("cls") in classes:
            return classes[match.group("cls")](match.group("message"))
    return None


def _is_ray_wrapper(error: BaseException) -> bool:
    """True for the exception classes Ray makes to carry a remote error (RayTaskError and its dual twins)."""
    return any(cls.__name__.startswith("RayTaskError") or cls.__module__.startswith("ray.") for cls in type(error).__mro__[:2])


def find_user_error(error: BaseException) -> UserError | None:
    """The UserError that caused `error` (an object in its chain, else parsed from its tracebacks)."""
    for link in _chain(error):
        # Ray's `RayTaskError(PortInUseError)` twin is a UserError too, but its message is Ray's banner and
        # traceback: the original (its `.cause`, later in the chain) or the traceback's last line says it.
        if isinstance(link, UserError) and not _is_ray_wrapper(link):
            return link
    for text in _texts(error):
        found = parse_user_error(text)
        if found is not None:
            return found
    return None


class DiskFullError(UserError, OSError):
    """The disk holding the run folder filled up during training."""


_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
# Less free space than this on the run folder's disk after a failure: the disk is why it failed,
# even when the error itself was lost (Tune then fails reading an error file it could not write).
DISK_NEARLY_FULL_BYTES = 8 * 2**20


def find_disk_full(error: BaseException, run_folder: Path) -> DiskFullError | None:
    """A one-line DiskFullError when `error` came from a full disk under `run_folder`, else None."""
    said_so = any(isinstance(link, OSError) and link.errno in _DISK_FULL_ERRNOS for link in _chain(error)) or any(
        phrase in text for text in _texts(error) for phrase in _DISK_FULL_TEXT)
    existing = next((p for p in (run_folder, *run_folder.parents) if p.exists()), None)
    free_bytes = shutil.disk_usage(existing).free if existing is not None else None
    if not said_so and (free_bytes is None or free_bytes >= DISK_NEARLY_FULL_BYTES):
        return None
    from control.errors import CheckpointError
    from control.training.checkpoints import latest_checkpoint

    try:
        kept = f"the newest complete checkpoint, {latest_checkpoint(run_folder, announce=False)}, is kept"
    except (CheckpointError, OSError):
        kept = "no complete checkpoint was saved"
    free = f"{free_bytes / 2**20:.1f} MiB free" if free_bytes is not None else "free space unknown"
    return DiskFullError(f"no space left on the disk of {run_folder} ({free}): training stopped; {kept}; "
                         f"free some space, then continue with --restore")
