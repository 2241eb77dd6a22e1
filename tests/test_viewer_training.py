"""The viewer during real (tiny) trainings: it never holds training up, and stopping it never stops training."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from control.training.cli import resolve_training_config, train
from control.viewer.cli import serve_run_folder
from control.viewer.live import LiveViewer
from control.viewer.server import ViewerServer

REPO = Path(__file__).resolve().parents[1]
VLIDAR = REPO / "resources/configs/ppo_vlidar_config.yaml"
# 1,024 steps per iteration: two iterations must outlast one publish interval (0.25 s) even on a fast machine, or the
# runners publish only one snapshot (128 steps per iteration did, once, at ~6,000 steps/s).
TINY = ["train_batch_size=1024", "minibatch_size=128", "num_epochs=1", "num_envs_per_env_runner=2",
        "env_config.max_episode_steps=50"]

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]


def _train(tmp_path: Path, name: str, iterations: int, viewer: LiveViewer | None, state_log: bool = False):
    resolved, recorded = resolve_training_config(VLIDAR, name=name, overrides=TINY, seed=7,
                                                 stop={"iteration": iterations})
    return train(resolved, results_dir=tmp_path, name=name, recorded_config=recorded, verbose=0,
                 viewer=viewer or False, state_log=state_log)


@pytest.fixture(scope="module")
def plain_run(ray_session, tmp_path_factory):
    """A 2-iteration seeded run without a viewer, with its state log (results_dir, outcome)."""
    results_dir = tmp_path_factory.mktemp("viewer_runs")
    return results_dir, _train(results_dir, "plain", 2, None, state_log=True)


def _results(folder: Path) -> list[dict]:
    (path,) = (folder / "train_1").glob("*/result.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_stopping_the_viewer_mid_training_leaves_the_training_running(ray_session, tmp_path):
    viewer = LiveViewer(port=0)
    stopped_at: dict = {}

    def stop_after_first_iteration() -> None:
        deadline = time.monotonic() + 240
        while not viewer.store.stats()["iterations"] and time.monotonic() < deadline:
            time.sleep(0.1)
        stopped_at["iteration"] = viewer.store.stats()["iterations"]
        viewer.stop()  # the page's server and the channel actor go; the env runners keep sampling

    stopper = threading.Thread(target=stop_after_first_iteration, daemon=True)
    stopper.start()
    outcome = _train(tmp_path, "stopped_viewer", 4, viewer)
    stopper.join(timeout=10)
    assert 1 <= stopped_at["iteration"] < 4
    assert outcome.iteration == 4 and outcome.checkpoint is not None
    assert [r["training_iteration"] for r in _results(tmp_path / "stopped_viewer")] == [1, 2, 3, 4]
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", viewer.server.port), timeout=5).close()


def test_training_with_no_page_open_is_the_same_training_and_the_channel_stays_bounded(plain_run, tmp_path):
    plain_dir, plain = plain_run
    # A bound of 1: two tiny iterations publish only a few snapshots (4 per second) on a fast machine.
    viewer = LiveViewer(port=0, max_snapshots=1)
    watched = _train(tmp_path, "unwatched", 2, viewer, state_log=True)
    # Same seed, same config: the viewer changed nothing the policy saw or learned.
    plain_rows, watched_rows = _results(plain_dir / "plain"), _results(tmp_path / "unwatched")
    for a, b in zip(plain_rows, watched_rows, strict=True):
        assert a["num_env_steps_sampled_lifetime"] == b["num_env_steps_sampled_lifetime"]
        assert a["env_runners"]["episode_return_mean"] == b["env_runners"]["episode_return_mean"]
    assert watched.iteration == plain.iteration == 2
    # Nobody watched: the runners published anyway and the channel kept only its bound, dropping the rest.
    stats = viewer.channel_stats
    assert stats is not None and stats["received"] > stats["max_snapshots"] == 1
    assert stats["queued"] <= 1 and stats["dropped"] == stats["received"] - stats["queued"]
    assert viewer.store.stats()["received"] == 0  # the driver never pulled: no page was open


def test_viewer_of_a_finished_run_folder_serves_its_curves_and_cars(plain_run):
    results_dir, _ = plain_run
    server = ViewerServer("127.0.0.1", 0).bind()
    done = threading.Event()
    serving = threading.Thread(target=serve_run_folder, args=(results_dir / "plain", server, done), daemon=True)
    serving.start()
    try:
        news: dict = {}
        with urllib.request.urlopen(server.url + "api/events", timeout=30) as response:
            while not {"iterations", "snapshots", "tracks"} <= set(news):
                line = response.readline()
                if line.startswith(b"data:"):
                    for key, value in json.loads(line[len(b"data:"):]).items():
                        news.setdefault(key, []).extend(value if isinstance(value, list) else [value])
    finally:
        done.set()
        serving.join(timeout=10)
    assert [p["iteration"] for p in news["iterations"]] == [1, 2]
    assert news["tracks"][0]["name"] == "oval"
    cars = news["snapshots"][-1]
    assert len(cars["id"]) == 2 and cars["track"] == ["oval", "oval"]  # num_envs_per_env_runner=2
    assert all(isinstance(x, float) for x in cars["x"] + cars["y"])
