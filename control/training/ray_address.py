"""--address HOST:PORT checked before Ray is asked to join it (ray.init waits minutes for a head that is not there)."""
from __future__ import annotations

import socket

from control.errors import UserError

CONNECT_TIMEOUT_S = 10.0  # a reachable head answers a TCP connect in milliseconds, even across a cluster


class RayAddressError(UserError):
    """A Ray cluster address that nothing answers at."""


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of 'HOST:PORT' (also 'ray://HOST:PORT'); None for 'auto', 'local' or a bare host."""
    text = address.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    if text in ("auto", "local", "") or ":" not in text:
        return None
    host, _, port = text.rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise RayAddressError(f"--address {address}: expected 'auto' or HOST:PORT with port 1..65535, e.g. 10.0.0.1:6379")
    return host, int(port)


def check_ray_address(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raise RayAddressError unless something accepts a TCP connection at the head's HOST:PORT."""
    parts = split_address(address)
    if parts is None:
        return  # 'auto' is resolved by Ray from the local node, which fails at once when there is none
    host, port = parts
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise RayAddressError(
            f"--address {address}: no Ray head answers at {host}:{port} ({reason} after at most {timeout_s:.0f} s); "
            f"start one there (ray start --head --port {port}) or pass the address `ray start` printed"
        ) from None
