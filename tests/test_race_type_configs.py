"""The shipped object-avoidance and head-to-bot configs and their DeepRacer-style reward files."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from control.env.racing_env import RacingEnv
from control.training.config_loader import load_ppo_config
from tests.test_race_objects import _rectangle_track

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "resources" / "configs"
REWARDS = REPO / "resources" / "rewards"
RACES = {"object_avoidance": "ppo_object_avoidance_config.yaml", "head_to_bot": "ppo_head_to_bot_config.yaml"}


def _reward_file(name: str):
    """The shipped reward file imported on its own, as the DeepRacer console would run it."""
    spec = importlib.util.spec_from_file_location(name, REWARDS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_function


@pytest.mark.parametrize("race", sorted(RACES))
def test_shipped_race_configs_load_and_validate(race, monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name their reward file relative to the repo root, as `make train` runs
    config, resolved = load_ppo_config(CONFIGS / RACES[race])
    env_config = resolved.env_config
    assert env_config["race"]["type"] == race
    assert env_config["observation"]["type"] == "vlidar"  # trains on a CPU
    assert Path(env_config["reward"]).is_absolute() and Path(env_config["reward"]).is_file()
    assert config.gym_env_vectorize_mode == "vector_entry_point"


@pytest.mark.parametrize("race", sorted(RACES))
def test_reward_files_return_finite_rewards_on_real_params(race, monkeypatch):
    monkeypatch.chdir(REPO)
    _, resolved = load_ppo_config(CONFIGS / RACES[race])
    env = RacingEnv({**resolved.env_config, "max_episode_steps": 40})
    reward_function = _reward_file(Path(resolved.env_config["reward"]).stem)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    values = []
    for _ in range(40):
        _, reward, terminated, truncated, info = env.step(rng.uniform(-0.3, 1.0, 2).astype(np.float32))
        assert len(info["params"]["objects_location"]) == (6 if race == "object_avoidance" else 3)
        values.append(reward)
        assert reward == pytest.approx(reward_function(dict(info["params"])))  # the env ran the file
        if terminated or truncated:
            break
    assert all(math.isfinite(v) and v > 0 for v in values)
    # A time trial's empty object lists do not break them either.
    trial = RacingEnv({"track": "oval", "reward": resolved.env_config["reward"]})
    trial.reset(seed=0)
    _, reward, *_ = trial.step(np.array([0.0, 0.0], dtype=np.float32))
    assert math.isfinite(reward) and reward > 0


def _drive_in_lane(track_path: Path, box_lane: int, lane_y_m: float, steps: int = 120) -> tuple[list[float], str]:
    """Drive the rectangle's bottom straight at 1 m/s, steering into the lane at y = lane_y_m; a box at 6 m in box_lane."""
    env = RacingEnv({"track": str(track_path), "start": {"mode": "fixed"}, "reward": str(REWARDS / "object_avoidance_reward.py"),
                     "race": {"type": "object_avoidance", "positions": [[0.1, box_lane]]}})
    env.reset(seed=0)
    rewards, status = [], "in_progress"
    y, heading_deg = 0.0, 0.0
    for _ in range(steps):
        steer_deg = float(np.clip(60.0 * (lane_y_m - y) - 1.5 * heading_deg, -30.0, 30.0))
        action = np.array([steer_deg / 30.0, 2 * (1.0 - 0.5) / 3.5 - 1], dtype=np.float32)
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        y, heading_deg, status = info["params"]["y"], info["params"]["heading"], info["episode_status"]
        if terminated or truncated:
            break
    return rewards, status


def test_the_object_avoidance_reward_pays_an_avoiding_car_more_than_one_driving_into_the_box(tmp_path):
    track_path = _rectangle_track().to_npy(tmp_path / "rectangle.npy")
    # The same driving (into the outer lane, y = -0.25 m), the box in the other lane or in the car's.
    avoided, avoided_status = _drive_in_lane(track_path, box_lane=1, lane_y_m=-0.25)
    crashed, crashed_status = _drive_in_lane(track_path, box_lane=-1, lane_y_m=-0.25)
    assert avoided_status == "in_progress" and crashed_status == "crashed"
    assert sum(avoided) > sum(crashed)
    assert crashed[-1] == pytest.approx(1e-3)  # the crash step itself
    # Closing in on the box in its lane pays less per step than passing it in the other lane, step for step.
    approach = slice(len(crashed) - 12, len(crashed) - 1)
    assert np.mean(crashed[approach]) < np.mean(avoided[approach])


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_one_tiny_training_iteration_with_the_object_avoidance_config(ray_session, monkeypatch):
    monkeypatch.chdir(REPO)
    config, _ = load_ppo_config(CONFIGS / RACES["object_avoidance"], [
        "train_batch_size=64", "minibatch_size=32", "num_epochs=1", "num_envs_per_env_runner=2",
        "env_config.max_episode_steps=30", "seed=0"])
    algo = config.build_algo()
    try:
        result = algo.train()
        assert result["training_iteration"] == 1
        assert result["env_runners"]["num_env_steps_sampled"] >= 64
        race = algo.env_runner.env.unwrapped.race
        assert race.race_objects is not None and race.race_objects.num_objects == 6
    finally:
        algo.stop()


def test_the_head_to_bot_reward_pays_passing_in_the_other_lane_more_than_tailgating_the_bot():
    from tests.test_race_rollout import LaneDriver

    config = {"track": "oval", "start": {"mode": "fixed"}, "reward": str(REWARDS / "head_to_bot_reward.py"),
              "race": {"type": "head_to_bot", "num_bots": 1, "bot_speed_mps": 0.3, "lane_changes": False}}
    totals, statuses = {}, {}
    for lane in ("bot's", "other"):
        env = RacingEnv(config)
        env.reset(seed=1)  # the bot starts 5.5 m ahead: caught within the lap
        bot_right = -1.0 if env.params["objects_left_of_center"][0] else 1.0
        driver = LaneDriver(env, offset_m=0.2 * bot_right * (1 if lane == "bot's" else -1))
        obs, rewards = None, []
        for _ in range(300):
            obs, reward, terminated, truncated, info = env.step(driver.compute_action(obs))
            rewards.append(reward)
            if terminated or truncated:
                break
        totals[lane], statuses[lane] = sum(rewards), info["episode_status"]
    assert statuses["bot's"] == "crashed" and statuses["other"] in ("in_progress", "lap_complete")
    assert totals["other"] > totals["bot's"]
