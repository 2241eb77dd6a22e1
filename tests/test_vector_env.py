"""The batched core: same episodes as the one-car env of before, N cars = N single envs, NEXT_STEP autoreset, seeding."""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import control  # noqa: F401  (registers the env ids)
from control.env.racing_env import RacingEnv
from control.env.registration import ENV_IDS, make_env_creator
from control.env.vector_env import RacingVectorEnv

REFERENCE = Path(__file__).parent / "data" / "reference_trajectories.npz"


def _cases():
    import sys

    sys.path.insert(0, str(REFERENCE.parent))
    from make_reference_trajectories import CASES, DRIVEN_CASES

    return {**{(n, s): c for n, c in CASES.items() for s in (0, 1)}, **{(n, 0): c for n, c in DRIVEN_CASES.items()}}


CASES = _cases()


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_replaying_recorded_actions_gives_the_one_car_env_of_before(case):
    """Recorded with the one-car env before the batched core (tests/data/make_reference_trajectories.py)."""
    name, seed = case
    ref = np.load(REFERENCE)
    key = f"{name}/{seed}"
    env = RacingEnv(CASES[case])
    obs, _ = env.reset(seed=seed)
    resets = 0
    for t, action in enumerate(ref[f"{key}/actions"]):
        obs, reward, terminated, truncated, info = env.step(action)
        observed = obs if not isinstance(obs, dict) else obs["vlidar"]
        expected = ref[f"{key}/obs"][t] if f"{key}/obs" in ref else ref[f"{key}/obs_vlidar"][t]
        np.testing.assert_allclose(observed, expected, atol=1e-5, err_msg=f"{key} step {t}")
        if isinstance(obs, dict):
            assert np.array_equal(obs["camera"], ref[f"{key}/obs_camera"][t])
        assert reward == pytest.approx(float(ref[f"{key}/reward"][t]), abs=1e-9)
        assert (terminated, truncated) == (bool(ref[f"{key}/terminated"][t]), bool(ref[f"{key}/truncated"][t]))
        assert info["episode_status"] == ref[f"{key}/status"][t]
        assert info["params"]["progress"] == pytest.approx(float(ref[f"{key}/progress"][t]), abs=1e-6)
        lap = float(ref[f"{key}/lap_time_s"][t])
        assert ("lap_time_s" in info) == (not np.isnan(lap)) and info.get("lap_time_s", lap) == pytest.approx(lap, nan_ok=True)
        if terminated or truncated:
            obs, _ = env.reset()
            resets += 1
    assert resets == len(ref[f"{key}/reset_obs" if f"{key}/reset_obs" in ref else f"{key}/reset_obs_vlidar"]) - 1


VECTOR_CONFIGS = {
    "vlidar": {"track": "speedway", "max_episode_steps": 60},
    "camera_stack": {"track": "hairpins", "observation": {"type": "camera", "width_px": 24, "height_px": 16, "frame_stack": 2},
                     "max_episode_steps": 50},
    "tracks_and_directions": {"track": ["oval", "hairpins"], "start": {"direction": "random"}, "action": {"type": "discrete"}},
}


@pytest.mark.parametrize("name", list(VECTOR_CONFIGS))
def test_vector_env_equals_n_single_envs_with_next_step_autoreset(name):
    config, n, seed, steps = VECTOR_CONFIGS[name], 4, 11, 150
    venv = RacingVectorEnv(config, num_envs=n)
    singles = [RacingEnv(config) for _ in range(n)]
    vobs, _ = venv.reset(seed=seed)
    for i, (env, obs) in enumerate(zip(singles, vobs, strict=True)):
        np.testing.assert_allclose(obs, env.reset(seed=seed + i)[0], atol=1e-6)
    venv.action_space.seed(seed)
    pending_reset = [False] * n
    for _ in range(steps):
        actions = venv.action_space.sample()
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(actions)
        for i, env in enumerate(singles):
            if pending_reset[i]:  # NEXT_STEP: this step reset the car, ignoring its action
                obs, info = env.reset()
                reward, terminated, truncated = 0.0, False, False
                assert vinfo["episode_status"][i] == "prepare" and not vinfo["_sim_time_s"][i]
            else:
                obs, reward, terminated, truncated, info = env.step(actions[i])
                assert vinfo["episode_status"][i] == info["episode_status"]
                assert vinfo["_lap_time_s"][i] == ("lap_time_s" in info)
            np.testing.assert_allclose(vobs[i], obs, atol=1e-6)
            assert vrew[i] == pytest.approx(reward, abs=1e-12)
            assert (vterm[i], vtrunc[i]) == (terminated, truncated)
            assert vinfo["params"]["progress"][i] == pytest.approx(info["params"]["progress"])
            pending_reset[i] = terminated or truncated


def test_batch_size_does_not_change_a_cars_episode():
    config = {"track": "hairpins", "start": {"lateral_noise_m": 0.2}}
    small, big = RacingVectorEnv(config, num_envs=1), RacingVectorEnv(config, num_envs=6)
    a, _ = small.reset(seed=5)
    b, _ = big.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(80):
        actions = rng.uniform(-1, 1, (6, 2)).astype(np.float32)
        a, ra, *_ = small.step(actions[:1])
        b, rb, *_ = big.step(actions)
        np.testing.assert_allclose(a[0], b[0], atol=1e-12)
        assert ra[0] == rb[0]


def test_terminated_cars_next_observation_is_its_reset_observation():
    venv = RacingVectorEnv({"track": "oval", "start": {"mode": "fixed"}}, num_envs=2)
    assert venv.metadata["autoreset_mode"] == gym.vector.AutoresetMode.NEXT_STEP
    venv.reset(seed=0)
    full_left = np.array([[1.0, -0.5], [0.0, -0.5]], dtype=np.float32)  # car 0 drives off the track, car 1 goes on
    for _ in range(200):
        obs, reward, terminated, truncated, info = venv.step(full_left)
        if terminated[0]:
            break
    assert info["episode_status"][0] == "off_track" and not terminated[1]
    obs, reward, terminated, truncated, info = venv.step(full_left)
    fresh = RacingEnv({"track": "oval", "start": {"mode": "fixed"}})
    fresh_obs, _ = fresh.reset(seed=0)
    np.testing.assert_allclose(obs[0], fresh_obs, atol=1e-6)  # fixed start: the same pose as a fresh episode
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0] and info["episode_status"][0] == "prepare"
    assert info["params"]["steps"][0] == 0 and info["params"]["steps"][1] > 0


@pytest.mark.parametrize("env_id", list(ENV_IDS))
def test_make_vec_vector_entry_point_returns_the_native_vector_env(env_id):
    venv = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, RacingVectorEnv) and venv.num_envs == 3
    obs, _ = venv.reset(seed=0)
    assert venv.observation_space.contains(obs)
    obs, *_ = venv.step(venv.action_space.sample())
    assert venv.observation_space.contains(obs)


def test_rllib_vector_creator_seeds_each_car_from_worker_and_vector_index():
    from ray.rllib.env.env_context import EnvContext

    config = {"seed": 3, "start": {"lateral_noise_m": 0.3}}
    venv = make_env_creator("RacerVLidar-v0")(EnvContext({**config, "num_envs": 3}, worker_index=2, vector_index=0))
    assert isinstance(venv, RacingVectorEnv) and venv.num_envs == 3
    obs, _ = venv.reset()
    for i in range(3):  # car i is the env that had worker_index 2, vector_index i
        single = RacingEnv(EnvContext(config, worker_index=2, vector_index=i))
        np.testing.assert_allclose(obs[i], single.reset()[0], atol=1e-12)
    # A plain dict (what RLlib 2.60 passes with num_envs) still gets the env runner's index.
    plain = make_env_creator("RacerVLidar-v0")({**config, "num_envs": 2})
    assert plain.worker_index == 0


@pytest.mark.ray
def test_a_tiny_rllib_run_on_the_vector_entry_point(ray_session, tmp_path):
    from ray.rllib.algorithms.ppo import PPOConfig

    from control.env.registration import register_rllib_envs

    register_rllib_envs()
    config = (PPOConfig().environment("RacerVLidar-v0", env_config={"max_episode_steps": 50})
              .env_runners(num_env_runners=0, num_envs_per_env_runner=4, gym_env_vectorize_mode="vector_entry_point",
                           rollout_fragment_length=50)
              .training(train_batch_size_per_learner=200, minibatch_size=100, num_epochs=1))
    algo = config.build_algo()
    try:
        assert isinstance(algo.env_runner.env.unwrapped, RacingVectorEnv)
        result = algo.train()
        assert result["env_runners"]["num_env_steps_sampled"] >= 200
    finally:
        algo.stop()


@pytest.mark.parametrize("name", ["ppo_vlidar_config", "ppo_camera_config", "ppo_vlidar_procedural_config"])
def test_shipped_configs_train_the_builtin_simulator_on_the_native_vector_env(name):
    from control.training.config_loader import build_ppo_config, load_config_file, resolve_config

    config = build_ppo_config(resolve_config(load_config_file(Path(__file__).parents[1] / "resources" / "configs" / f"{name}.yaml")))
    assert config.gym_env_vectorize_mode == "vector_entry_point"


def test_vectorize_mode_defaults_to_the_native_vector_env_and_sync_stays_selectable():
    from control.errors import ConfigError
    from control.training.config_loader import resolve_config

    raw = {"env": "RacerVLidar-v0", "env_config": {"track": "oval"}}
    assert resolve_config(raw).settings["gym_env_vectorize_mode"] == "vector_entry_point"
    assert resolve_config({**raw, "gym_env_vectorize_mode": "sync"}).settings["gym_env_vectorize_mode"] == "sync"
    carla = {**raw, "env_config": {"track": "oval", "simulator": "carla"}}
    assert "gym_env_vectorize_mode" not in resolve_config(carla).settings  # one car per server: gymnasium's sync default
    with pytest.raises(ConfigError, match="use gym_env_vectorize_mode: sync"):
        resolve_config({**carla, "gym_env_vectorize_mode": "vector_entry_point"})


def test_per_car_infos_as_rllib_splits_them_are_what_the_callbacks_read():
    """RLlib wraps the vector env in gymnasium's DictInfoToList; the metrics and state-log callbacks read each car's dict."""
    from gymnasium.wrappers.vector import DictInfoToList

    from control.integration.callbacks.metrics import summarize_episode
    from control.integration.callbacks.state_log import state_log_row

    config = {"track": "oval", "max_episode_steps": 30}
    venv = DictInfoToList(RacingVectorEnv(config, num_envs=2))
    single = RacingEnv(config)
    _, infos = venv.reset(seed=4)
    _, info = single.reset(seed=4)
    assert infos[0]["params"]["closest_waypoints"] == info["params"]["closest_waypoints"]
    rows = []
    for _ in range(35):
        action = np.array([0.1, 0.2], dtype=np.float32)
        _, _, _, _, infos = venv.step(np.stack([action, action]))
        _, _, terminated, truncated, info = single.step(action)
        if "steering_deg" in infos[0]:  # a step, not an autoreset
            rows.append(infos[0])
            assert infos[0]["params"]["closest_waypoints"] == info["params"]["closest_waypoints"]
            assert state_log_row(infos[0], episode=0, reward=0.0, done=False, iteration=1, worker_index=0, env_index=0,
                                 episode_id="e") == state_log_row(info, episode=0, reward=0.0, done=False, iteration=1,
                                                                  worker_index=0, env_index=0, episode_id="e")
        if terminated or truncated:
            break
    assert summarize_episode(rows)["progress"] == pytest.approx(info["params"]["progress"])


def test_lean_infos_give_the_callbacks_the_same_episode_summaries_as_full_infos():
    """env_config.infos: lean (training's default) keeps only each episode's last step; the metrics are unchanged."""
    from gymnasium.wrappers.vector import DictInfoToList

    from control.integration.callbacks.metrics import summarize_episode

    def episodes(infos_mode: str) -> tuple[list[dict], int]:
        config = {"track": "oval", "max_episode_steps": 400, "infos": infos_mode, "seed": 3}
        vector = RacingVectorEnv(config, num_envs=3)
        venv = DictInfoToList(vector)
        venv.reset(seed=3)
        rng = np.random.default_rng(0)
        per_car: list[list[dict]] = [[] for _ in range(3)]
        summaries, empty_steps = [], 0
        for _ in range(900):
            # Car 0 follows the centerline (it laps), cars 1 and 2 drive at random (they crash and reset).
            p = vector.race.params
            heading_error = np.angle(np.exp(1j * (p["waypoint_direction_rad"][0] - np.radians(p["heading"][0]))))
            side = 1.0 if p["is_left_of_center"][0] else -1.0
            steer = np.clip((np.degrees(heading_error) * 2.0 - 40.0 * side * p["distance_from_center"][0]) / 30.0, -1, 1)
            actions = np.clip(rng.normal([0.0, 0.6], 0.5, size=(3, 2)), -1, 1).astype(np.float32)
            actions[0] = (steer, 0.0)
            _, _, terminated, truncated, infos = venv.step(actions)
            for car in range(3):
                if infos[car].get("episode_status") == "prepare" or "track" in infos[car]:
                    continue  # an autoreset step: the new episode's reset info
                empty_steps += not infos[car]
                per_car[car].append(infos[car])
                if terminated[car] or truncated[car]:
                    summaries.append(summarize_episode(per_car[car]))
                    per_car[car] = []
        return summaries, empty_steps

    full, full_empty = episodes("full")
    lean, lean_empty = episodes("lean")
    assert len(full) >= 5 and len(lean) == len(full)
    assert full_empty == 0 and lean_empty > 10 * len(lean)  # lean: most steps carry nothing
    for f, le in zip(full, lean, strict=True):
        assert le["progress"] == pytest.approx(f["progress"]) and le["status"] == f["status"]
        assert le["speed_mps_mean"] == pytest.approx(f["speed_mps_mean"])
        assert le["lap_times_s"] == pytest.approx(f["lap_times_s"])
    assert any(s["lap_times_s"] for s in full)  # lap times are compared too


def test_training_resolves_auto_infos_to_lean_unless_the_state_log_needs_every_step():
    from control.training.cli import resolve_training_config
    from control.training.config_loader import build_ppo_config

    resolved, _ = resolve_training_config("resources/configs/ppo_vlidar_config.yaml", name="t", overrides=[])
    assert resolved.env_config["infos"] == "auto"
    assert build_ppo_config(resolved, auto_infos="lean").env_config["infos"] == "lean"
    assert build_ppo_config(resolved).env_config["infos"] == "full"
    explicit, _ = resolve_training_config("resources/configs/ppo_vlidar_config.yaml", name="t", overrides=["env_config.infos=full"])
    assert build_ppo_config(explicit, auto_infos="lean").env_config["infos"] == "full"


def test_state_log_with_lean_infos_is_refused_before_anything_starts(tmp_path):
    from control.errors import ConfigError
    from control.training.cli import resolve_training_config, train

    resolved, _ = resolve_training_config("resources/configs/ppo_vlidar_config.yaml", name="t", overrides=["env_config.infos=lean"])
    with pytest.raises(ConfigError, match="env_config.infos is 'lean'"):
        train(resolved, results_dir=tmp_path, name="t", state_log=True)
    assert not any(tmp_path.iterdir())  # no run folder
