"""The viewer's web server: Starlette app (page, static files, server-sent events) served by uvicorn in a thread.

Bound to 127.0.0.1 unless another address is asked for (--viewer_host); on loopback a middleware
also turns away any client that is not local. The event stream sends what is new in the
ViewerStore a few times per second: car snapshots, track outlines, laps, iteration points.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from control.errors import UserError
from control.viewer.store import ViewerStore

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOST = "127.0.0.1"
DEFAULT_PORT = 8731
EVENT_PERIOD_S = 0.25  # how often a client's stream looks for news (the publishers' rate is a few per second)
HEARTBEAT_S = 10.0  # a comment line now and then keeps proxies from closing an idle stream


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_arg(text: str) -> int:
    """argparse type of a TCP port (0 = any free port); argparse prints the one-line error and exits 2."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number 0-65535 (put --viewer after CONFIG)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number 0-65535")
    return port


class LocalClientsOnly:
    """ASGI middleware: a client from outside loopback gets 403 (the socket is bound to loopback anyway)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client and not is_loopback(str(client[0])):
            if scope["type"] == "http":
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"the viewer serves 127.0.0.1 only (--viewer_host)"})
            return
        await self.app(scope, receive, send)


class ClientCount:
    """How many pages have an open event stream (the live feed polls the channel only while one does)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, delta: int) -> None:
        """Count a stream opened (+1) or closed (-1)."""
        with self._lock:
            self.value += delta


def make_app(store: ViewerStore, *, run_name: str, videos: Callable[[], list[Path]] = list,
             clients: ClientCount | None = None, stopping: threading.Event | None = None,
             local_only: bool = True) -> Any:
    """The Starlette app of the viewer page over `store`; videos() lists the rollout mp4 files to offer."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    clients = clients or ClientCount()
    stopping = stopping or threading.Event()

    def video_files() -> dict[str, Path]:
        return {f"{p.parent.name}/{p.name}": p for p in videos()}

    async def index(request: Any) -> Any:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(request: Any) -> Any:
        return JSONResponse({"run": run_name, "videos": sorted(video_files())})

    async def video(request: Any) -> Any:
        path = video_files().get(request.path_params["name"])
        return FileResponse(path, media_type="video/mp4") if path else Response("no such video", status_code=404)

    async def events(request: Any) -> Any:
        async def stream() -> Any:
            clients.add(1)
            cursor = {"after_seq": 0, "lap_after": 0, "iterations_after": 0}
            known: list[str] = []
            quiet_s = 0.0
            try:
                yield "retry: 1000\n\n"
                while not stopping.is_set():
                    data = store.read(**cursor, known_tracks=known)
                    cursor = {"after_seq": data["seq"], "lap_after": data["lap_seq"],
                              "iterations_after": data["iteration_count"]}
                    known.extend(t["name"] for t in data["tracks"])
                    news = {k: data[k] for k in ("snapshots", "laps", "iterations", "tracks") if data[k]}
                    if news:
                        quiet_s = 0.0
                        yield f"event: update\ndata: {json.dumps(news, separators=(',', ':'))}\n\n"
                    elif quiet_s >= HEARTBEAT_S:
                        quiet_s = 0.0
                        yield ": idle\n\n"
                    await asyncio.sleep(EVENT_PERIOD_S)
                    quiet_s += EVENT_PERIOD_S
            finally:
                clients.add(-1)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    routes = [Route("/", index), Route("/api/info", info), Route("/api/events", events),
              Route("/video/{name:path}", video), Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    middleware = [Middleware(LocalClientsOnly)] if local_only else []
    return Starlette(routes=routes, middleware=middleware)


class ViewerServer:
    """uvicorn serving an app on host:port in a daemon thread; bind() first (a busy port is a one-line error)."""

    def __init__(self, host: str = LOOPBACK_HOST, port: int = DEFAULT_PORT) -> None:
        self.host, self.port = host, int(port)
        self._socket: socket.socket | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.stopping = threading.Event()

    def bind(self) -> "ViewerServer":
        """Take the port now (0 = any free one; again: no-op); raises UserError when it cannot be had."""
        if self._socket is not None:
            return self
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise UserError(f"--viewer_host {self.host}: not an address of this machine ({exc.strerror})") from None
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            raise UserError(f"--viewer {self.port}: cannot serve on {self.host}:{self.port} ({exc.strerror}); "
                            "give another port, or 0 for any free one") from None
        sock.listen(64)
        self._socket = sock
        self.port = int(sock.getsockname()[1])
        return self

    @property
    def url(self) -> str:
        """The page's address (the loopback one when serving every interface)."""
        host = LOOPBACK_HOST if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    def start(self, app: Any) -> "ViewerServer":
        """Serve `app` on the bound socket in a daemon thread."""
        import uvicorn

        if self._socket is None:
            self.bind()
        # log_config=None: uvicorn's default runs logging.config.dictConfig, which closes every logging handler
        # already in the process (Ray's and Tune's in ppo_train; pytest's log capture, which broke later tests).
        # log_level still sets uvicorn's own loggers.
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, log_config=None)
        self._server = uvicorn.Server(config)
        sockets = [self._socket]
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": sockets},
                                        name="viewer-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving (open event streams end); never raises."""
        self.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            try:
                self._socket.close()
            except OSError:
                pass
            self._socket = None
