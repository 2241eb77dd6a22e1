"""The viewer's server without training: bind address, port errors, the page and its event stream."""
from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from control.errors import UserError
from control.training.cli import build_parser
from control.viewer.curves import iteration_point
from control.viewer.server import DEFAULT_PORT, ViewerServer, make_app
from control.viewer.store import ViewerStore


def _this_machines_address() -> str:
    """An address of this machine that is not loopback (skip when it has none)."""
    candidates = []
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing: it only picks the outgoing interface
            candidates.append(s.getsockname()[0])
    except OSError:
        pass
    try:
        candidates.append(socket.gethostbyname(socket.gethostname()))
    except OSError:
        pass
    for address in candidates:
        if not address.startswith("127.") and address != "0.0.0.0":
            return address
    pytest.skip("this machine has no address besides loopback")


@pytest.fixture
def serve():
    """Start ViewerServers over a store; all stopped at the end."""
    servers = []

    def start(store: ViewerStore, host: str = "127.0.0.1") -> ViewerServer:
        server = ViewerServer(host, 0).bind()
        server.start(make_app(store, run_name="unit", stopping=server.stopping, local_only=host == "127.0.0.1"))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read()


def test_default_bind_serves_loopback_and_refuses_the_machines_other_address(serve):
    address = _this_machines_address()
    server = serve(ViewerStore())
    status, body = _get(server.url)
    assert status == 200 and b'<canvas id="track"' in body
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((address, server.port), timeout=5).close()


def test_viewer_host_exposes_the_page_when_asked(serve):
    address = _this_machines_address()
    server = serve(ViewerStore(), host="0.0.0.0")
    status, body = _get(f"http://{address}:{server.port}/")
    assert status == 200 and b'<canvas id="track"' in body


def test_busy_port_is_a_one_line_user_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=rf"--viewer {port}: cannot serve on 127.0.0.1:{port} .*0 for any free one"):
            ViewerServer("127.0.0.1", port).bind()


def test_event_stream_sends_what_the_store_holds(serve):
    store = ViewerStore()
    store.add_track({"name": "oval", "length_m": 1.0, "center": [], "inner": [], "outer": []})
    store.publish({"id": ["0.0.0"], "track": ["oval"], "x": [1.5], "y": [-2.0]})
    store.add_iteration({"iteration": 1, "return": 3.0})
    server = serve(store)
    with urllib.request.urlopen(server.url + "api/events", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        line = b""
        while not line.startswith(b"data:"):
            line = response.readline()
    news = json.loads(line[len(b"data:"):])
    assert news["tracks"][0]["name"] == "oval"
    assert news["snapshots"][0]["x"] == [1.5]
    assert news["iterations"] == [{"iteration": 1, "return": 3.0}]


def test_static_files_are_served_from_the_package_no_cdn(serve):
    server = serve(ViewerStore())
    _, page = _get(server.url)
    assert b"http://" not in page and b"https://" not in page  # nothing fetched from the internet
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "viewer.js", "uPlot.LICENSE"):
        status, body = _get(f"{server.url}static/{name}")
        assert status == 200 and body


def test_store_drops_the_oldest_snapshot_when_full_and_counts_it():
    store = ViewerStore(max_snapshots=3)
    for k in range(5):
        store.publish({"k": k})
    assert [s["k"] for s in store.read()["snapshots"]] == [2, 3, 4]
    assert store.stats()["dropped"] == 2
    assert store.read(after_seq=4)["snapshots"] == [{"k": 4}]


def test_viewer_flag_takes_an_optional_port(capsys):
    parser = build_parser()
    assert parser.parse_args(["c.yaml", "--viewer"]).viewer == DEFAULT_PORT
    assert parser.parse_args(["c.yaml", "--viewer", "0"]).viewer == 0
    assert parser.parse_args(["c.yaml"]).viewer is None
    assert parser.parse_args(["c.yaml"]).viewer_host == "127.0.0.1"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--viewer", "c.yaml"])
    assert exit_info.value.code == 2
    assert "argument --viewer: 'c.yaml' is not a port number 0-65535 (put --viewer after CONFIG)" in capsys.readouterr().err


def test_iteration_point_reads_the_console_lines_metrics():
    result = {"training_iteration": 3, "time_total_s": 9.0, "time_this_iter_s": 2.0,
              "num_env_steps_sampled_lifetime": 1200,
              "env_runners": {"num_env_steps_sampled": 400, "episode_return_mean": 5.5, "lap_progress_mean": 12.0,
                              "lap_progress_max": 30.0, "offtrack_rate": 0.75, "lap_time_s_mean": float("nan")}}
    point = iteration_point(result)
    assert point["iteration"] == 3 and point["env_steps"] == 1200
    assert point["env_steps_per_s"] == 200.0
    assert (point["return"], point["progress_pct"], point["progress_max_pct"], point["offtrack_rate"]) == (5.5, 12.0, 30.0, 0.75)
    assert point["lap_time_s"] is None  # NaN is not JSON: no point rather than a broken stream
    assert json.loads(json.dumps(point)) == point


def test_train_with_viewer_on_a_busy_port_fails_in_one_line_before_ray_starts(tmp_path, capsys):
    from control.training.cli import main

    config = Path(__file__).resolve().parents[1] / "resources/configs/ppo_vlidar_config.yaml"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        rc = main([str(config), "-n", "busy", "--results_dir", str(tmp_path), "--viewer", str(port)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: --viewer {port}: cannot serve on 127.0.0.1:{port}")
    assert not (tmp_path / "busy").exists()  # nothing left behind


def test_serving_leaves_the_process_logging_handlers_open():
    """uvicorn's default log config ran dictConfig, which closed every handler already in the process
    (Ray's and Tune's in ppo_train; pytest's log capture in the tests, which then failed every later test)."""
    import logging
    import time

    from control.viewer.server import ViewerServer, make_app
    from control.viewer.store import ViewerStore

    closed: list[str] = []

    class Recording(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            pass

        def close(self) -> None:
            closed.append(self.get_name() or "handler")
            super().close()

    handler = Recording()
    logging.getLogger("some.app").addHandler(handler)
    server = ViewerServer("127.0.0.1", 0).bind()
    try:
        server.start(make_app(ViewerStore(), run_name="r"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # serving: uvicorn has configured its logging by now
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        assert closed == []
    finally:
        server.stop()
        logging.getLogger("some.app").removeHandler(handler)
