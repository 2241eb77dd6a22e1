"""Config loader: legacy RLlib names map to the new API stack, nothing is ignored silently."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from control.errors import ConfigError
from control.training.config_loader import (
    apply_overrides,
    build_ppo_config,
    load_config_file,
    load_ppo_config,
    parse_yaml,
    resolve_config,
)
from control.training.stop import RunStopper, StopConditions, parse_duration_s

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "resources" / "configs"
BASE = {"env": "RacerVLidar-v0"}


def build(extra: dict):
    """(PPOConfig, ResolvedConfig) for the base config plus `extra`."""
    resolved = resolve_config({**BASE, **extra})
    return build_ppo_config(resolved), resolved


@pytest.mark.parametrize("old, value, attribute", [
    ("num_workers", 3, "num_env_runners"),
    ("num_rollout_workers", 2, "num_env_runners"),
    ("num_envs_per_worker", 4, "num_envs_per_env_runner"),
    ("num_cpus_per_worker", 2, "num_cpus_per_env_runner"),
    ("num_gpus_per_worker", 0.5, "num_gpus_per_env_runner"),
    ("num_gpus", 1, "num_gpus_per_learner"),
    ("sgd_minibatch_size", 64, "minibatch_size"),
    ("num_sgd_iter", 7, "num_epochs"),
    ("lambda", 0.9, "lambda_"),
    ("evaluation_num_workers", 2, "evaluation_num_env_runners"),
    ("shuffle_sequences", False, "shuffle_batch_per_epoch"),
])
def test_legacy_name_is_mapped_with_one_notice(old, value, attribute):
    config, resolved = build({old: value})
    assert getattr(config, attribute) == value
    notices = [n for n in resolved.notices if f"'{old}'" in n]
    assert len(notices) == 1 and "\n" not in notices[0]


@pytest.mark.parametrize("key, value, attribute", [
    ("train_batch_size", 512, "train_batch_size"),
    ("rollout_fragment_length", 64, "rollout_fragment_length"),
    ("batch_mode", "complete_episodes", "batch_mode"),
    ("use_critic", False, "use_critic"),
    ("use_gae", False, "use_gae"),
    ("kl_coeff", 0.3, "kl_coeff"),
    ("kl_target", 0.02, "kl_target"),
    ("vf_loss_coeff", 0.7, "vf_loss_coeff"),
    ("entropy_coeff", 0.01, "entropy_coeff"),
    ("clip_param", 0.1, "clip_param"),
    ("vf_clip_param", 500.0, "vf_clip_param"),
    ("grad_clip", 40.0, "grad_clip"),
])
def test_current_ppo_setting_reaches_the_config(key, value, attribute):
    config, resolved = build({key: value})
    assert getattr(config, attribute) == value
    assert resolved.notices == []


def test_a_small_vf_clip_param_gets_a_notice_that_names_the_fix():
    # RLlib clamps the value's squared error at vf_clip_param: at 10 a 15-min object-avoidance run's value net
    # stopped learning and the policy collapsed. The setting still reaches RLlib; the notice says why to change it.
    config, resolved = build({"vf_clip_param": 10.0})
    assert config.vf_clip_param == 10.0
    assert len(resolved.notices) == 1 and "vf_clip_param: 10000" in resolved.notices[0]
    _, without_critic = build({"vf_clip_param": 10.0, "use_critic": False, "use_gae": False})
    assert without_critic.notices == []


def test_train_batch_size_sets_the_per_learner_batch_on_one_learner():
    config, _ = build({"train_batch_size": 512})
    assert config.total_train_batch_size == 512


def test_kl_coeff_zero_turns_the_kl_loss_off():
    config, resolved = build({"kl_coeff": 0.0})
    assert config.use_kl_loss is False
    assert any("use_kl_loss" in n for n in resolved.notices)


def test_top_level_vf_share_layers_goes_to_the_model_config():
    config, resolved = build({"vf_share_layers": True})
    assert config.model_config["vf_share_layers"] is True
    assert any("'vf_share_layers'" in n for n in resolved.notices)


def test_model_section_becomes_default_model_config():
    config, resolved = build({"model": {"fcnet_hiddens": [32, 16], "fcnet_activation": "relu",
                                        "conv_filters": [[8, [4, 4], 2]], "post_fcnet_hiddens": [8]}})
    assert config.model_config["fcnet_hiddens"] == [32, 16]
    assert config.model_config["fcnet_activation"] == "relu"
    assert config.model_config["conv_filters"] == [[8, [4, 4], 2]]
    assert config.model_config["head_fcnet_hiddens"] == [8]
    assert any("fcnet_hiddens, fcnet_activation, conv_filters" in n for n in resolved.notices)
    assert any("'model.post_fcnet_hiddens' is now 'model_config.head_fcnet_hiddens'" in n for n in resolved.notices)


def test_model_custom_model_cannot_be_honoured():
    with pytest.raises(ConfigError, match="model.custom_model"):
        build({"model": {"custom_model": "my_net"}})


def test_unknown_model_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="fcnet_hidens.*did you mean 'fcnet_hiddens'"):
        build({"model": {"fcnet_hidens": [8]}})


def test_mean_std_observation_filter_becomes_a_connector():
    from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter

    config, resolved = build({"observation_filter": "MeanStdFilter"})
    assert isinstance(config._env_to_module_connector(None, None, None), MeanStdFilter)
    assert any("MeanStdFilter" in n for n in resolved.notices)
    plain, _ = build({"observation_filter": "NoFilter"})
    assert plain._env_to_module_connector is None


def test_unknown_observation_filter_is_an_error():
    with pytest.raises(ConfigError, match="did you mean 'MeanStdFilter'"):
        build({"observation_filter": "MeanStdFiltr"})


def test_lr_and_entropy_schedules_become_new_stack_schedules():
    config, resolved = build({"lr": 1e-3, "lr_schedule": [[1000, 1e-4], [2000, 1e-5]],
                              "entropy_coeff_schedule": [[0, 0.01], [5000, 0.0]]})
    assert config.lr == [[0, 1e-3], [1000, 1e-4], [2000, 1e-5]]
    assert config.entropy_coeff == [[0, 0.01], [5000, 0.0]]
    assert sum("schedule" in n for n in resolved.notices) >= 2


def test_bad_schedule_is_an_error():
    with pytest.raises(ConfigError, match="lr_schedule"):
        build({"lr_schedule": [[0, 1e-3], [0, 1e-4]]})


def test_clip_rewards_clips_episode_rewards_in_the_learner_connector():
    from ray.rllib.env.single_agent_episode import SingleAgentEpisode

    config, resolved = build({"clip_rewards": 2.0})
    connector = config._learner_connector(None, None)
    episode = SingleAgentEpisode(observations=[0, 1, 2, 3], actions=[0, 0, 0], rewards=[5.0, -7.0, 0.5],
                                 len_lookback_buffer=0)
    connector(rl_module=None, batch={}, episodes=[episode])
    np.testing.assert_allclose(episode.get_rewards(), [2.0, -2.0, 0.5])
    assert any("clip_rewards" in n for n in resolved.notices)


def test_negative_clip_rewards_is_an_error():
    with pytest.raises(ConfigError, match="clip_rewards must be true, false or a positive number"):
        build({"clip_rewards": -1.0})


@pytest.mark.parametrize("key", ["learning_starts", "buffer_size", "simple_optimizer", "shuffle_buffer_size"])
def test_old_key_meaningless_for_ppo_is_ignored_with_the_reason(key):
    config, resolved = build({key: 1000})
    (notice,) = [n for n in resolved.notices if f"'{key}'" in n]
    assert notice.startswith(f"ignored '{key}': ") and len(notice) > len(key) + 15
    assert key not in resolved.settings


def test_key_of_another_algorithm_is_an_error_naming_it():
    with pytest.raises(ConfigError, match="unknown key 'n_step'"):
        build({"n_step": 3})


def test_typo_is_an_error_with_a_suggestion():
    with pytest.raises(ConfigError, match="unknown key 'num_sgd_itr'.*did you mean 'num_sgd_iter'"):
        build({"num_sgd_itr": 3})
    with pytest.raises(ConfigError, match="unknown key 'entropy_coef'.*did you mean 'entropy_coeff'"):
        build({"entropy_coef": 0.1})


def test_tensorflow_cannot_be_honoured():
    with pytest.raises(ConfigError, match="'framework: tf'.*torch"):
        build({"framework": "tf"})
    build({"framework": "torch"})


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(ConfigError, match="both 'num_workers' and .*'num_env_runners'"):
        build({"num_workers": 1, "num_env_runners": 2})


def test_env_config_is_validated_against_the_env_defaults():
    with pytest.raises(ConfigError, match="max_episode_step.*did you mean 'max_episode_steps'"):
        build({"env_config": {"max_episode_step": 10}})
    _, resolved = build({"env_config": {"max_episode_steps": 10}})
    assert resolved.env_config["max_episode_steps"] == 10
    assert resolved.env_config["track"] == "oval"  # defaults filled in


def test_unknown_env_suggests_a_registered_one():
    with pytest.raises(ConfigError, match="did you mean 'RacerVLidar-v0'"):
        resolve_config({"env": "RacerVLidar-v1"})


def test_evaluation_gets_its_own_runner_and_deterministic_actions():
    config, resolved = build({"evaluation_interval": 2})
    assert config.evaluation_interval == 2
    assert config.evaluation_num_env_runners == 1
    assert config.evaluation_config["explore"] is False
    evaluation = config.get_evaluation_config_object()
    assert evaluation.env_config["_in_evaluation"] is True  # own simulator/server slot (CARLA)
    assert evaluation.env_config["track"] == "oval" and "_in_evaluation" not in config.env_config


def test_yaml_reads_exponent_floats():
    assert parse_yaml("lr: 1e-4", "x") == {"lr": 1e-4}


def test_set_overrides_reach_into_sections():
    raw = apply_overrides({"env_config": {"track": "oval"}}, ["env_config.max_episode_steps=50", "lr=1e-4",
                                                              "model.fcnet_hiddens=[8, 8]"])
    assert raw == {"env_config": {"track": "oval", "max_episode_steps": 50}, "lr": 1e-4,
                   "model": {"fcnet_hiddens": [8, 8]}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["lr"])


@pytest.mark.parametrize("name, env, observation", [("ppo_vlidar_config.yaml", "RacerVLidar-v0", "vlidar"),
                                                     ("ppo_camera_config.yaml", "RacerCamera-v0", "camera")])
def test_shipped_configs_load_with_a_stop_condition(name, env, observation):
    config, resolved = load_ppo_config(CONFIGS / name)
    assert config.env == env and resolved.env_config["observation"]["type"] == observation
    assert resolved.env_config["simulator"] == "builtin"
    assert resolved.stop.progress is not None and resolved.stop.duration_s is not None


def test_resolved_config_reads_back_to_the_same_config(tmp_path):
    import yaml

    _, resolved = load_ppo_config(CONFIGS / "ppo_vlidar_config.yaml", ["num_workers=1", "observation_filter=MeanStdFilter"])
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(resolved.to_dict()))
    again = resolve_config(load_config_file(path))
    assert again.to_dict() == resolved.to_dict()


@pytest.mark.parametrize("text, seconds", [("360s", 360), ("10m", 600), ("1h", 3600), ("1h30m", 5400),
                                           ("2h5m10s", 7510), ("90", 90), (45, 45)])
def test_stop_duration_parses(text, seconds):
    assert parse_duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "10 minutes", "1.5h", "m", "10x", "-5s", "0s", "1h-30m", "30m1h"])
def test_bad_stop_duration_is_rejected(text):
    with pytest.raises(ConfigError, match="duration"):
        parse_duration_s(text)


def test_stopper_stops_on_each_condition():
    result = {"training_iteration": 5, "num_env_steps_sampled_lifetime": 1000,
              "env_runners": {"lap_progress_mean": 40.0}}
    assert RunStopper(StopConditions(iteration=5))("t", result)
    assert not RunStopper(StopConditions(iteration=6))("t", result)
    assert RunStopper(StopConditions(timesteps=1000))("t", result)
    assert RunStopper(StopConditions(progress=40.0))("t", result)
    assert not RunStopper(StopConditions(progress=50.0))("t", result)
    assert RunStopper(StopConditions(duration_s=1e-9))("t", result)


def test_set_with_an_old_name_overrides_the_current_name_in_the_file():
    raw = apply_overrides({"num_env_runners": 0, "num_sgd_iter": 3}, ["num_workers=2", "num_epochs=5"])
    assert raw == {"num_env_runners": 2, "num_sgd_iter": 5}


def test_carla_simulator_gets_one_server_per_sub_env_and_runner_restarts():
    from control.training.config_loader import load_ppo_config

    config, _ = load_ppo_config(
        REPO / "resources/configs/ppo_vlidar_config.yaml",
        # The shipped config trains on the native vector env; CARLA is one car per server, vectorised by gymnasium.
        ["env_config.simulator=carla", "num_envs_per_env_runner=4", "env_config.carla={avoid_server_init: true}",
         "gym_env_vectorize_mode=sync"],
    )
    assert config.env_config["carla"]["envs_per_runner"] == 4
    assert config.restart_failed_env_runners is True


@pytest.mark.parametrize("section, message", [
    ({"stop": {"iteraton": 3}}, "unknown key 'iteraton' in config: stop (did you mean 'iteration'?)"),
    ({"stop": {"iteration": 0}}, "config: stop.iteration must be a whole number > 0, got 0"),
    ({"stop": {"progress": 150}}, "config: stop.progress must be a lap progress in percent, 0 < P <= 100, got 150"),
    ({"stop": {"duration": "10 minutes"}}, "config: stop.duration: bad duration '10 minutes'"),
    ({"checkpoint": {"freqency": 5}}, "unknown key 'freqency' in config: checkpoint (did you mean 'frequency'?)"),
    ({"checkpoint": {"num_to_keep": 0}}, "config: checkpoint.num_to_keep must be a whole number >= 1, got 0"),
    ({"checkpoint": {"frequency": "5"}}, "config: checkpoint.frequency must be a whole number >= 1, got '5'"),
])
def test_project_sections_are_checked_like_every_section(section, message):
    with pytest.raises(ConfigError) as err:
        resolve_config({**BASE, **section})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_project_sections_fill_their_defaults():
    resolved = resolve_config({**BASE, "stop": {"duration": "10m", "progress": 90}, "checkpoint": {"num_to_keep": 5}})
    assert resolved.stop == StopConditions(duration_s=600.0, progress=90.0)
    assert resolved.checkpoint == {"frequency": 10, "num_to_keep": 5}
