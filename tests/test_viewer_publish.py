"""The env-runner side of the viewer: what a snapshot holds, read from the env's public race state."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.env.vector_env import RacingVectorEnv
from control.integration.callbacks.viewer_publish import (
    STATUS_OFFTRACK,
    STATUS_OK,
    LapRecorder,
    car_snapshot,
    race_batches,
    sample_cars,
)
from control.viewer.track_outline import MAX_OUTLINE_POINTS, track_outline

CONFIG = {"observation": {"type": "vlidar"}, "track": "oval", "seed": 3}


def test_snapshot_of_the_native_vector_env_is_every_cars_position_and_speed():
    env = RacingVectorEnv(CONFIG, num_envs=3)
    env.reset(seed=1)
    for _ in range(5):
        env.step(np.tile([0.0, 1.0], (3, 1)).astype(np.float32))  # straight ahead, full speed
    races = race_batches(env)
    snapshot = car_snapshot(races, sample_cars(races, 16), runner=2, evaluation=False)
    st = env.race.states
    assert snapshot["id"] == ["2.0.0", "2.0.1", "2.0.2"]
    np.testing.assert_allclose(snapshot["x"], st.x_m, atol=1e-3)
    np.testing.assert_allclose(snapshot["y"], st.y_m, atol=1e-3)
    np.testing.assert_allclose(snapshot["speed"], st.speed_mps, atol=1e-2)
    assert snapshot["track"] == ["oval"] * 3
    assert snapshot["control_hz"] == env.race.limits.control_hz
    assert set(snapshot["status"]) <= {STATUS_OK, STATUS_OFFTRACK}


def test_snapshot_reads_gymnasiums_sync_vector_env_of_racing_envs():
    env = gym.vector.SyncVectorEnv([lambda: RacingEnv(CONFIG) for _ in range(2)])
    env.reset(seed=1)
    races = race_batches(env)
    assert len(races) == 2
    snapshot = car_snapshot(races, sample_cars(races, 16), runner=0, evaluation=True)
    assert snapshot["id"] == ["0.0.0", "0.1.0"] and snapshot["evaluation"] is True
    assert snapshot["x"] == pytest.approx([env.envs[0].vehicle.x_m, env.envs[1].vehicle.x_m], abs=1e-3)


def test_snapshot_before_the_first_reset_is_none():
    env = RacingVectorEnv(CONFIG, num_envs=2)
    races = race_batches(env)
    assert car_snapshot(races, sample_cars(races, 16), runner=0, evaluation=False) is None


def test_many_cars_are_sampled_evenly_up_to_the_cap():
    env = RacingVectorEnv(CONFIG, num_envs=40)
    (group,) = sample_cars(race_batches(env), 8)
    assert group[0] == 0 and len(group[1]) == 8
    assert group[1][0] == 0 and group[1][-1] == 39 and np.all(np.diff(group[1]) > 0)


def test_track_outline_is_small_and_keeps_the_shape():
    env = RacingEnv(CONFIG)
    track = env.track
    outline = track_outline(track)
    assert outline["name"] == "oval"
    assert len(outline["inner"]) <= MAX_OUTLINE_POINTS and len(outline["outer"]) <= MAX_OUTLINE_POINTS
    xs = [p[0] for p in outline["outer"]]
    assert min(xs) == pytest.approx(track.outer_m[:, 0].min(), abs=0.2)
    assert max(xs) == pytest.approx(track.outer_m[:, 0].max(), abs=0.2)


def test_lap_recorder_replays_each_cars_own_episode_from_its_start():
    env = RacingVectorEnv(CONFIG, num_envs=2)
    env.reset(seed=1)
    races = race_batches(env)
    recorder = LapRecorder(max_steps=50)
    recorder.record(races)
    recorder.start(0)
    recorder.start(1)
    xs = []
    for step in range(6):
        env.step(np.tile([0.0, 1.0], (2, 1)).astype(np.float32))
        recorder.record(races)
        xs.append(env.race.states.x_m.copy())
        if step == 2:
            recorder.start(1)  # car 1 starts a new episode at this step
    car0, car1 = recorder.episode(0), recorder.episode(1)
    assert car0.shape == (4, 7) and car1.shape == (4, 4)
    np.testing.assert_allclose(car0[0, 1:], [x[0] for x in xs], atol=1e-4)
    np.testing.assert_allclose(car1[0], [x[1] for x in xs[2:]], atol=1e-4)


def test_lap_recorder_is_bounded():
    env = RacingVectorEnv(CONFIG, num_envs=1)
    env.reset(seed=1)
    recorder = LapRecorder(max_steps=5)
    recorder.record(race_batches(env))
    recorder.start(0)
    for _ in range(20):
        env.step(np.array([[0.0, 1.0]], dtype=np.float32))
        recorder.record(race_batches(env))
    assert recorder.episode(0).shape == (4, 5)  # the newest 5 steps of a longer episode
    assert recorder.episode(0)[0, -1] == pytest.approx(env.race.states.x_m[0], abs=1e-4)  # float32 ring
