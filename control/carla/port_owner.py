"""Whether the process listening on a local TCP port belongs to a given Docker container (Linux /proc).

Launch mode uses it to make sure the CARLA server that answers is the container it started, not a
server someone else started on the same port. The answer is None ("cannot tell") wherever /proc
does not show it: another OS, or a client in another PID namespace than the container's processes.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_TCP_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"  # the kernel's TCP_LISTEN state in /proc/net/tcp


def listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on TCP `port` (any local address) in this network namespace."""
    inodes: set[str] = set()
    for table in _TCP_TABLES:
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _socket_inodes_of(pid: int) -> set[str]:
    found = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:["):-1])
    return found


def _in_container(pid: int, container_id: str) -> bool:
    # The PIDs `docker top` reports are the host's; they are this container's processes here only when
    # their cgroup names the container (otherwise we see another PID namespace).
    try:
        return container_id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def container_owns_port(port: int, container_id: str, container_pids: Iterable[int]) -> bool | None:
    """True when a process of the container listens on `port`, False when another one does, None when unknown."""
    inodes = listening_inodes(port)
    if not inodes:
        return None  # the listener is not in this network namespace (or has just gone)
    visible = [pid for pid in container_pids if _in_container(pid, container_id)]
    if not visible:
        return None
    for pid in visible:
        try:
            if _socket_inodes_of(pid) & inodes:
                return True
        except OSError:  # the process ended, or its fds are not ours to read
            return None
    return False
