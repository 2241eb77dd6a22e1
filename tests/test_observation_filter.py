"""observation_filter: MeanStdFilter end to end: the checkpoint keeps the statistics, rollout and restore use them."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from control.rollout.inference import FILTER_STATE_FILE, Policy, load_run_config, make_env
from control.training.checkpoints import latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
VLIDAR = str(REPO / "resources/configs/ppo_vlidar_config.yaml")
OVERRIDES = ["train_batch_size=128", "minibatch_size=64", "num_epochs=1", "num_envs_per_env_runner=1",
             "env_config.max_episode_steps=50", "observation_filter=MeanStdFilter"]

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", params=[0, 1], ids=["runners0", "runners1"])
def checkpoint(request, ray_session, tmp_path_factory) -> Path:
    """The last checkpoint of two tiny iterations trained with the MeanStdFilter, sampling in-process or remotely."""
    from control.training.cli import main as train_main

    results_dir = tmp_path_factory.mktemp("results")
    sets = [arg for o in OVERRIDES for arg in ("--set", o)]
    assert train_main([VLIDAR, "-n", "filt", "--results_dir", str(results_dir), *sets,
                       "--num_env_runners", str(request.param), "--stop_iteration", "2", "-v", "0"]) == 0
    return latest_checkpoint(results_dir / "filt")


def saved_running_stat(checkpoint: Path):
    """The MeanStdFilter's running statistics as RLlib wrote them (read with RLlib's own RunningStat)."""
    from ray.rllib.utils.filter import RunningStat

    state = pickle.loads((checkpoint / FILTER_STATE_FILE).read_bytes())
    (agent_state,) = state.values()  # single agent: keyed by agent id None
    (running_stat,) = agent_state["running_stats"]  # a Box observation: one RunningStat
    return RunningStat.from_state(running_stat)


def test_checkpoint_holds_the_filter_statistics_seen_in_training(checkpoint):
    stat = saved_running_stat(checkpoint)
    assert stat.n >= 2 * 128  # every sampled observation of both iterations (plus the resets)
    assert stat.mean.shape == (34,)  # 32 rays + speed + steering
    assert np.any(stat.mean != 0.0) and np.any(stat.std > 0.0)


def test_rollout_normalises_observations_with_the_saved_statistics(checkpoint, capsys):
    from ray.rllib.utils.numpy import SMALL_NUMBER

    run = load_run_config(checkpoint)
    assert run.observation_filter == "MeanStdFilter"
    policy = Policy(checkpoint, observation_filter=run.observation_filter)
    assert "warning" not in capsys.readouterr().err
    env = make_env(run, {}, render=False)
    try:
        policy.check_env(env, run.env)
        obs, _ = env.reset(seed=0)
        stat = saved_running_stat(checkpoint)
        filtered = policy.filter(obs)
        expected = np.clip((obs - stat.mean) / (stat.std + SMALL_NUMBER), -10.0, 10.0)  # RLlib's MeanStdFilter
        np.testing.assert_allclose(filtered, expected, rtol=1e-4, atol=1e-4)
        assert not np.allclose(filtered, obs)
        policy.compute_action(obs)
        assert stat.n == saved_running_stat(checkpoint).n and np.array_equal(policy.filter(obs), filtered)  # not updated
    finally:
        env.close()


def test_restore_continues_from_the_saved_statistics(checkpoint):
    from control.training.checkpoints import make_restore_callback
    from control.training.cli import _register_envs
    from control.training.config_loader import load_ppo_config

    def pushes(env_runner) -> int:
        pipeline_state = env_runner.get_state(components="env_to_module_connector")["env_to_module_connector"]
        (running_stat,) = pipeline_state["MeanStdFilter"][None]["running_stats"]
        return running_stat["num_pushes"]

    _register_envs()
    num_env_runners = checkpoint_runners(checkpoint)
    config, _ = load_ppo_config(VLIDAR, [*OVERRIDES, f"num_env_runners={num_env_runners}"])
    config.callbacks(callbacks_class=[make_restore_callback(checkpoint)])  # what ppo_train.py --restore adds
    algo = config.build_algo()
    try:
        saved = saved_running_stat(checkpoint).n
        assert pushes(algo.env_runner) == saved
        # Remote runners (they do the sampling) get the restored statistics too.
        remote = algo.env_runner_group.foreach_env_runner(pushes, local_env_runner=False)
        assert remote == [saved] * num_env_runners
    finally:
        algo.stop()


def checkpoint_runners(checkpoint: Path) -> int:
    """num_env_runners of the run the checkpoint belongs to (from its config.yaml)."""
    import yaml

    from control.rollout.inference import find_run_folder

    return int(yaml.safe_load((find_run_folder(checkpoint) / "config.yaml").read_text())["num_env_runners"])
