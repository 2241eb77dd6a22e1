"""Boxes and bot cars drawn: the env's rgb_array frame (rollout video), the rollout plot and the live viewer's snapshot."""
from __future__ import annotations

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.env.render import COLOURS, _canvas, rectangle_corners_m
from control.env.vector_env import RacingVectorEnv
from control.integration.callbacks.viewer_publish import car_snapshot, race_batches, sample_cars

BOX_AT = {"type": "object_avoidance", "positions": [[0.5, 1]], "box_length_m": 0.6, "box_width_m": 0.3}


def _frame_and_box_pixel(race: dict, box_race: dict = BOX_AT) -> tuple[np.ndarray, tuple[int, int]]:
    """A reset frame of the oval with `race`, and the pixel (row, column) of the centre of the box of `box_race`."""
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "race": race}, render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    boxed = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "race": box_race})
    boxed.reset(seed=0)
    (x, y), = boxed.params["objects_location"]
    u, v = _canvas(env.race_state()).px(np.array([[x, y]]))[0]
    return frame, (int(round(v)), int(round(u)))


def test_a_render_frame_shows_the_box_where_it_is():
    frame, (row, col) = _frame_and_box_pixel(BOX_AT)
    assert tuple(frame[row, col]) == COLOURS["box"]
    # Without the box that pixel is road; with the box elsewhere, too.
    plain, _ = _frame_and_box_pixel({"type": "time_trial"})
    moved, _ = _frame_and_box_pixel({**BOX_AT, "positions": [[0.8, -1]]})
    assert tuple(plain[row, col]) == COLOURS["road"] and not np.all(plain == COLOURS["box"], axis=-1).any()
    assert tuple(moved[row, col]) == COLOURS["road"] and np.all(moved == COLOURS["box"], axis=-1).any()


def test_bots_are_drawn_in_their_own_colour_and_move_between_frames():
    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "race": {"type": "head_to_bot", "num_bots": 2, "bot_speed_mps": 2.0}},
                    render_mode="rgb_array")
    env.reset(seed=1)
    first = np.all(env.render() == COLOURS["bot"], axis=-1)
    for _ in range(15):
        env.step(np.array([0.0, -1.0], dtype=np.float32))
    later = np.all(env.render() == COLOURS["bot"], axis=-1)
    assert first.sum() > 20 and later.sum() > 20  # two bot cars of a few dozen pixels each
    assert not np.array_equal(first, later)  # 2 m further on after a second


def test_rectangle_corners_follow_the_heading():
    # Heading +y: the front is up, the left side is -x; corners front-left, front-right, rear-right, rear-left.
    corners = rectangle_corners_m(np.array([[1.0, 2.0, np.pi / 2, 0.5, 0.25]]))[0]
    np.testing.assert_allclose(corners, [[0.75, 2.5], [1.25, 2.5], [1.25, 1.5], [0.75, 1.5]], atol=1e-12)


def test_the_viewer_snapshot_carries_the_objects_of_a_sampled_car():
    env = RacingVectorEnv({"track": "oval", "race": {"type": "head_to_bot", "num_bots": 3}}, num_envs=2)
    env.reset(seed=2)
    env.step(np.zeros((2, 2), dtype=np.float32))
    races = race_batches(env)
    snapshot = car_snapshot(races, sample_cars(races, 16), runner=1, evaluation=False)
    objects = snapshot["objects"]
    assert objects["car"] == "1.0.0" and objects["bots"] is True
    x, y, yaw, half_length, half_width = (a[0] for a in env.race.race_objects.rectangles())
    np.testing.assert_allclose(objects["rects"], np.c_[x, y, yaw, half_length, half_width], atol=1e-3)
    # A time trial's snapshot has no objects.
    plain = RacingVectorEnv({"track": "oval"}, num_envs=1)
    plain.reset(seed=0)
    plain.step(np.zeros((1, 2), dtype=np.float32))
    assert "objects" not in car_snapshot(race_batches(plain), [(0, np.array([0]))], runner=0, evaluation=False)


@pytest.mark.parametrize("race", [BOX_AT, {"type": "head_to_bot", "num_bots": 2}])
def test_the_rollout_trajectory_plot_marks_the_objects(race, tmp_path):
    from dataclasses import replace

    from PIL import Image

    from control.rollout.episodes import run_episodes
    from control.rollout.plots import plot_trajectories

    class Slow:
        def compute_action(self, obs):
            return np.array([0.0, -0.5], dtype=np.float32)

    env = RacingEnv({"track": "oval", "start": {"mode": "fixed"}, "max_episode_steps": 20, "race": race})
    (record,) = run_episodes(env, Slow(), 1, seed=0, progress_bar=False)
    # Where the objects were when the episode started (bots move on; boxes stay).
    assert len(record.objects_xy_m) == len(env.params["objects_location"])
    if race["type"] == "object_avoidance":
        np.testing.assert_allclose(record.objects_xy_m, env.params["objects_location"])
    with_objects = np.asarray(Image.open(plot_trajectories([record], tmp_path / "with.png", max_speed_mps=4.0)))
    without = np.asarray(Image.open(plot_trajectories([replace(record, objects_xy_m=[])], tmp_path / "without.png", max_speed_mps=4.0)))
    assert with_objects.shape == without.shape and not np.array_equal(with_objects, without)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_viewer_page_draws_a_snapshots_boxes_as_rectangles(tmp_path):
    """The page in a real headless chromium, fed one real snapshot of an object-avoidance env (no training)."""
    from control.track.track import Track
    from control.viewer.server import ViewerServer, make_app
    from control.viewer.store import ViewerStore
    from control.viewer.track_outline import track_outline
    from tests.test_viewer_browser import CHROMIUM_FLAGS, _browser_or_skip

    sync_playwright = _browser_or_skip()
    env = RacingVectorEnv({"track": "oval", "start": {"mode": "fixed"}, "race": BOX_AT}, num_envs=1)
    env.reset(seed=0)
    env.step(np.zeros((1, 2), dtype=np.float32))
    races = race_batches(env)
    snapshot = car_snapshot(races, sample_cars(races, 16), runner=0, evaluation=False)
    store = ViewerStore()
    store.add_track(track_outline(Track.load("oval")))
    store.publish(snapshot)
    server = ViewerServer("127.0.0.1", 0).bind()
    server.start(make_app(store, run_name="objects", stopping=server.stopping, local_only=True))
    x, y = snapshot["objects"]["rects"][0][:2]
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path="/usr/bin/chromium",
                                                            headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page()
                page.goto(server.url, timeout=60_000)
                page.wait_for_function("window.viewer && window.viewer.objects !== null && window.viewer.frames > 5", timeout=60_000)
                # The pixel at the box's centre, through the page's own world-to-pixel transform.
                rgb = page.evaluate("""([x, y]) => {
                    const canvas = document.getElementById("track");
                    const tf = transformFor(window.viewer.tracks["oval"], canvas.width);
                    const [u, v] = tf.px(x, y);
                    return Array.from(canvas.getContext("2d").getImageData(Math.round(u), Math.round(v), 1, 1).data.slice(0, 3));
                }""", [x, y])
            finally:
                browser.close()
    finally:
        server.stop()
    assert rgb == [0xF0, 0x96, 0x1E]  # the box colour, drawn where the env put the box


def test_the_lidar_panel_shows_the_box_ahead_where_the_rays_stop(tmp_path):
    from control.env.render import MAP_SIZE
    from tests.test_race_objects import _rectangle_track

    path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    config = {"track": str(path), "start": {"mode": "fixed", "waypoint": 4},
              "observation": {"type": "vlidar", "num_rays": 33, "fov_deg": 180.0, "max_range_m": 5.0}}
    panels = {}
    for name, race in (("box", {"type": "object_avoidance", "positions": [[0.1, 1]]}), ("plain", {"type": "time_trial"})):
        env = RacingEnv({**config, "race": race}, render_mode="rgb_array")
        env.reset(seed=0)
        panels[name] = np.all(env.render()[:240, MAP_SIZE:] == COLOURS["box"], axis=-1)
    # The car at (2, 0) heading +x, the box 3.85-4.15 m ahead and 0.1-0.4 m to the left: 42 px per m above the car.
    rows, cols = np.nonzero(panels["box"])
    assert len(rows) > 20 and not panels["plain"].any()
    assert 228 - 4.15 * 42 - 2 <= rows.min() and rows.max() <= 228 - 3.85 * 42 + 2
    assert 160 - 0.4 * 42 - 2 <= cols.min() and cols.max() <= 160 - 0.1 * 42 + 2


def test_the_viewer_of_a_run_folder_shows_the_boxes_from_the_state_log(tmp_path):
    import yaml
    from gymnasium.wrappers.vector import DictInfoToList

    from control.integration.callbacks.state_log import COLUMNS, state_log_row
    from control.integration.state_log_writer import StateLogWriter
    from control.viewer.run_folder_feed import RunFolderFeed
    from control.viewer.store import ViewerStore

    env_config = {"track": "oval", "race": BOX_AT}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"env": "RacerVLidar-v0", "env_config": env_config}))
    env = DictInfoToList(RacingVectorEnv(env_config, num_envs=1))
    env.reset(seed=0)
    writer = StateLogWriter(tmp_path / "state_log", COLUMNS, max_bytes=0)
    writer.open("iter_000001_runner_000", 1)
    for _ in range(3):
        _, _, _, _, (info,) = env.step(np.zeros((1, 2), dtype=np.float32))
        writer.write_row(state_log_row(info, episode=0, reward=0.0, done=False, iteration=1, worker_index=0, env_index=0,
                                       episode_id="e"))
    writer.close()
    store = ViewerStore()
    feed = RunFolderFeed(tmp_path, store)
    feed._load_track()
    feed.poll_once()
    (snapshot,) = store.read()["snapshots"]
    x, y, yaw, half_length, half_width = (a[0] for a in env.unwrapped.race.race_objects.rectangles())
    objects = snapshot["objects"]
    assert objects["car"] == snapshot["id"][0] and objects["bots"] is False
    rects = np.asarray(objects["rects"])
    np.testing.assert_allclose(rects[:, [0, 1, 3, 4]], np.c_[x, y, half_length, half_width], atol=2e-3)
    # The log keeps no yaw: the page turns the box along the track at its place (a few degrees from the segment's).
    np.testing.assert_allclose(rects[:, 2], yaw, atol=0.1)


def test_the_lidar_panel_shows_rays_behind_the_car_for_deepracers_lidar():
    """DeepRacer's lidar sees ±150°: the car moves to the panel's centre so the rays behind it are drawn, not cut off."""
    from control.env.render import _lidar_panel

    angles = np.radians([-150.0, 0.0, 150.0])
    behind = np.asarray(_lidar_panel(angles, np.full(3, 1.0), 1.0, title="DeepRacer lidar"))
    forward_only = np.asarray(_lidar_panel(np.radians([-90.0, 0.0, 90.0]), np.full(3, 1.0), 1.0))
    ray_pixels = lambda panel: (panel[..., 0] < 50) & (panel[..., 1] > 200) & (panel[..., 2] == 60)  # noqa: E731  far rays: green
    # The car at the centre (160, 126), 105 px per m: the ray at -150° (to the right, behind) ends at (212, 217).
    assert ray_pixels(behind)[214:220, 209:216].any()
    assert np.nonzero(ray_pixels(forward_only))[0].max() <= 240 - 12 + 2  # a forward-only lidar keeps the car at the bottom


def test_the_rollout_frame_names_deepracers_lidar():
    env = RacingEnv({"track": "oval", "observation": {"type": "deepracer_lidar"}}, render_mode="rgb_array")
    env.reset(seed=0)
    assert env.race_state().lidar_name == "DeepRacer lidar"
    plain = RacingEnv({"track": "oval"})
    plain.reset(seed=0)
    assert plain.race_state().lidar_name == "virtual lidar"
