"""The viewer page in a real headless browser (Debian's chromium driven by Playwright) during a tiny real training."""
from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from control.training.cli import resolve_training_config, train
from control.training.stop_signal import StopSignal
from control.viewer.live import LiveViewer

REPO = Path(__file__).resolve().parents[1]
VLIDAR = REPO / "resources/configs/ppo_vlidar_config.yaml"
CHROMIUM = Path("/usr/bin/chromium")
TINY = ["train_batch_size=128", "minibatch_size=64", "num_epochs=1", "num_envs_per_env_runner=4",
        "env_config.max_episode_steps=60"]
# Debian's chromium as root in a container: no sandbox, no GPU, nothing reaching out to the network.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 60_000

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(240)]


def _browser_or_skip():
    """Playwright's sync API and the chromium binary, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -r requirements.txt)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run installs it)")
    return sync_playwright


def _watch_page(sync_playwright, viewer: LiveViewer, stop: StopSignal, seen: dict, profile: str) -> None:
    """Open the page, take two canvas screenshots and count curve points; then ask the training to stop."""
    try:
        with sync_playwright() as pw:
            # A persistent context is how Playwright takes a fresh --user-data-dir (the profile folder).
            browser = pw.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True,
                                                            args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1100})
            try:
                page = browser.new_page()
                page.goto(viewer.url, timeout=WAIT_MS)
                canvas = page.locator("#track")
                page.wait_for_function("window.viewer && window.viewer.snapshots > 0", timeout=WAIT_MS)
                seen["first"] = canvas.screenshot()
                snapshots = page.evaluate("window.viewer.snapshots")
                page.wait_for_function(f"window.viewer.snapshots > {snapshots}", timeout=WAIT_MS)
                page.wait_for_timeout(300)  # let the cars glide to their new snapshot
                seen["second"] = canvas.screenshot()
                page.wait_for_function("window.viewer.curves.return.data[0].length >= 1", timeout=WAIT_MS)
                seen["points_before"] = page.evaluate("window.viewer.curves.return.data[0].length")
                page.wait_for_function(f"window.viewer.curves.return.data[0].length > {seen['points_before']}",
                                       timeout=WAIT_MS)
                seen["points_after"] = page.evaluate("window.viewer.curves.return.data[0].length")
                seen["cars_info"] = page.inner_text("#cars-info")
            finally:
                browser.close()
    except Exception as exc:  # reported by the test, not lost in a thread
        seen["error"] = exc
    finally:
        stop.received = "the browser test is done"


def test_page_shows_cars_moving_and_curves_gaining_points_during_training(ray_session, tmp_path):
    sync_playwright = _browser_or_skip()
    viewer = LiveViewer(port=0)
    stop = StopSignal()  # not installed: the browser thread sets it to end the training after its checks
    resolved, recorded = resolve_training_config(VLIDAR, name="watched", overrides=TINY, stop={"iteration": 200})
    seen: dict = {}
    profile = tempfile.mkdtemp(prefix="viewer_chromium_")  # a fresh browser profile
    watcher = threading.Thread(target=_watch_page, args=(sync_playwright, viewer, stop, seen, profile), daemon=True)

    viewer.bind()
    watcher.start()  # page.goto waits for the server, which starts once Ray and the channel are up
    try:
        outcome = train(resolved, results_dir=tmp_path, name="watched", recorded_config=recorded, verbose=0,
                        viewer=viewer, stop_signal=stop)
    finally:
        stop.received = stop.received or "test ended"
        watcher.join(timeout=60)
        shutil.rmtree(profile, ignore_errors=True)
    if "error" in seen:
        raise seen["error"]
    assert seen["first"] != seen["second"], "the track canvas did not change between two snapshots"
    assert seen["points_after"] > seen["points_before"] >= 1
    assert "cars on oval" in seen["cars_info"]
    assert outcome.iteration >= seen["points_after"]
