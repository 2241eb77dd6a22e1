"""Object params in the vector env's step infos, and the state log's object columns (SIM_TRACE first)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from gymnasium.wrappers.vector import DictInfoToList

from control.env.vector_env import RacingVectorEnv
from control.integration.callbacks.state_log import COLUMNS, OBJECT_COLUMNS, SIM_TRACE_COLUMNS, state_log_row
from control.integration.state_log_writer import StateLogWriter
from tests.test_race_objects import _forward, _rectangle_track

OBJECT_KEYS = ("closest_objects", "objects_location", "objects_left_of_center", "objects_speed", "objects_heading",
               "objects_distance", "objects_distance_from_center", "object_in_camera")


def _two_boxes_env(tmp_path, num_envs: int = 2) -> DictInfoToList:
    """The 60 m rectangle (start at (0, 0) heading +x): box 0 at 6 m in the inner lane, box 1 at 42 m in the outer."""
    path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    env = RacingVectorEnv({"track": str(path), "start": {"mode": "fixed"},
                           "race": {"type": "object_avoidance", "positions": [[0.1, 1], [0.7, -1]]}}, num_envs=num_envs)
    return DictInfoToList(env)


def _row(info: dict) -> dict:
    return dict(zip(COLUMNS, state_log_row(info, episode=0, reward=1.0, done=False, iteration=1, worker_index=0,
                                           env_index=0, episode_id="e"), strict=True))


def test_vector_env_step_infos_carry_each_cars_object_params(tmp_path):
    env = _two_boxes_env(tmp_path)
    env.reset(seed=0)
    _, _, _, _, infos = env.step(np.stack([_forward(), _forward(0.6)]))
    race = env.unwrapped.race
    for i, info in enumerate(infos):  # what RLlib's env runner hands the callbacks, car by car
        expected = race.car_params(i)  # the one-car env's params dict of that car
        for key in OBJECT_KEYS:
            np.testing.assert_allclose(np.asarray(info["params"][key], dtype=float), np.asarray(expected[key], dtype=float),
                                       err_msg=key)
        assert info["params"]["closest_objects"].tolist() == [1, 0]
        np.testing.assert_allclose(info["params"]["objects_distance"], [6.0, 42.0], atol=1e-9)
    # A time trial's infos keep today's keys: no object params.
    plain = DictInfoToList(RacingVectorEnv({"track": "oval"}, num_envs=1))
    plain.reset(seed=0)
    _, _, _, _, (info,) = plain.step(np.zeros((1, 2), dtype=np.float32))
    assert not set(OBJECT_KEYS) & set(info["params"])


def test_state_log_rows_carry_the_next_and_previous_object_along_the_track(tmp_path):
    env = _two_boxes_env(tmp_path, num_envs=1)
    env.reset(seed=0)
    for _ in range(5):
        _, _, _, _, (info,) = env.step(_forward()[None])
    row = _row(info)
    car_m = info["params"]["projection_distance"]
    assert row["object_ahead"] == 0 and row["object_ahead_distance_m"] == pytest.approx(6.0 - car_m, abs=1e-4)
    assert row["object_behind"] == 1 and row["object_behind_distance_m"] == pytest.approx(car_m + 60.0 - 42.0, abs=1e-4)
    assert row["object_ahead_left_of_center"] is True  # box 0 is in the inner lane, the left on this track
    assert row["object_ahead_in_car_lane"] == bool(info["params"]["is_left_of_center"])
    assert json.loads(row["objects_location"]) == [[6.0, 0.25], [8.0, 10.25]]
    # SIM_TRACE columns stay first and a CSV of such rows reads back with pandas, as DeepRacer's notebooks read it.
    writer = StateLogWriter(tmp_path / "state_log", COLUMNS, max_bytes=0)
    writer.open("iter_000001_runner_000", 1)
    writer.write_row(state_log_row(info, episode=0, reward=1.0, done=False, iteration=1, worker_index=0, env_index=0,
                                   episode_id="e"))
    writer.close()
    data = pd.read_csv(writer.path)
    assert list(data.columns[:len(SIM_TRACE_COLUMNS)]) == list(SIM_TRACE_COLUMNS)
    assert list(data.columns[-len(OBJECT_COLUMNS):]) == list(OBJECT_COLUMNS)
    assert data["object_ahead_distance_m"][0] == pytest.approx(6.0 - car_m, abs=1e-4)


def test_time_trial_rows_leave_the_object_columns_empty():
    info = {"params": {"x": 1.0, "y": 2.0, "closest_waypoints": [3, 4], "closest_objects": [], "objects_distance": []},
            "episode_status": "in_progress"}
    row = _row(info)
    assert [row[c] for c in OBJECT_COLUMNS] == [""] * len(OBJECT_COLUMNS)
    assert row["closest_waypoint"] == 4


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_tiny_object_avoidance_training_writes_the_object_columns(ray_session, tmp_path, monkeypatch):
    from pathlib import Path

    from control.training.cli import main

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # the config names its reward file relative to the repo root
    rc = main([str(repo / "resources/configs/ppo_object_avoidance_config.yaml"), "-n", "oa", "--results_dir", str(tmp_path),
               "--stop_iteration", "1", "--state_log", "--set", "train_batch_size=64", "--set", "minibatch_size=32",
               "--set", "num_epochs=1", "--set", "num_envs_per_env_runner=2", "--set", "env_config.max_episode_steps=40",
               "-v", "0"])
    assert rc == 0
    (path,) = (tmp_path / "oa" / "state_log").glob("iter_*.csv")
    data = pd.read_csv(path)
    assert list(data.columns) == list(COLUMNS) and len(data) >= 64
    assert data["object_ahead"].between(0, 5).all()  # six boxes, every row has one ahead
    assert data["object_ahead_distance_m"].between(0.0, 77.7).all()
    assert {len(json.loads(cell)) for cell in data["objects_location"]} == {6}
