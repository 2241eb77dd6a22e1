"""Tables of older RLlib config names: renamed on the new API stack, meaningless for PPO, or unsupported.

The README's mapping table is written from these tables; keep both in step.
"""
from __future__ import annotations

# Old top-level name -> current top-level name (same value, same meaning).
RENAMED_KEYS: dict[str, str] = {
    "num_workers": "num_env_runners",
    "num_rollout_workers": "num_env_runners",
    "num_envs_per_worker": "num_envs_per_env_runner",
    "num_cpus_per_worker": "num_cpus_per_env_runner",
    "num_gpus_per_worker": "num_gpus_per_env_runner",
    "custom_resources_per_worker": "custom_resources_per_env_runner",
    "num_gpus": "num_gpus_per_learner",
    "num_cpus_for_driver": "num_cpus_for_main_process",
    "sgd_minibatch_size": "minibatch_size",
    "num_sgd_iter": "num_epochs",
    "lambda": "lambda_",
    "shuffle_sequences": "shuffle_batch_per_epoch",
    "evaluation_num_workers": "evaluation_num_env_runners",
    "timesteps_per_iteration": "min_sample_timesteps_per_iteration",
    "recreate_failed_workers": "restart_failed_env_runners",
    "ignore_worker_failures": "ignore_env_runner_failures",
    "num_consecutive_worker_failures_tolerance": "num_consecutive_env_runner_failures_tolerance",
    "worker_health_probe_timeout_s": "env_runner_health_probe_timeout_s",
    "worker_restore_timeout_s": "env_runner_restore_timeout_s",
}

# Old keys with no meaning for PPO on the new API stack -> why they are ignored.
_REPLAY = "PPO is on-policy and keeps no replay buffer"
_OLD_STACK = "only the old RLlib API stack read it; PPO here runs on the new stack"
_TF = "TensorFlow only; this project trains with torch"
IGNORED_KEYS: dict[str, str] = {
    "learning_starts": _REPLAY,
    "buffer_size": _REPLAY,
    "replay_buffer_config": _REPLAY,
    "prioritized_replay": _REPLAY,
    "prioritized_replay_alpha": _REPLAY,
    "prioritized_replay_beta": _REPLAY,
    "prioritized_replay_eps": _REPLAY,
    "store_buffer_in_checkpoints": _REPLAY,
    "target_network_update_freq": "PPO has no target network",
    "simple_optimizer": _OLD_STACK,
    "shuffle_buffer_size": "it sized the old offline input reader's shuffle buffer; PPO here samples online",
    "sample_async": _OLD_STACK,
    "sample_collector": _OLD_STACK,
    "preprocessor_pref": _OLD_STACK,
    "compress_observations": _OLD_STACK,
    "observation_fn": _OLD_STACK,
    "postprocess_inputs": _OLD_STACK,
    "policy_map_capacity": _OLD_STACK,
    "policy_map_cache": _OLD_STACK,
    "policy_states_are_swappable": _OLD_STACK,
    "synchronize_filters": _OLD_STACK,
    "update_worker_filter_stats": _OLD_STACK,
    "use_worker_filter_stats": _OLD_STACK,
    "sync_filters_on_rollout_workers_timeout_s": _OLD_STACK,
    "enable_connectors": _OLD_STACK,
    "exploration_config": "PPO explores by sampling its stochastic policy on the new stack",
    "soft_horizon": _OLD_STACK,
    "no_done_at_end": _OLD_STACK,
    "remote_env_batch_wait_ms": _OLD_STACK,
    "replay_sequence_length": _REPLAY,
    "worker_cls": _OLD_STACK,
    "_disable_preprocessor_api": _OLD_STACK,
    "_disable_action_flattening": _OLD_STACK,
    "_disable_execution_plan_api": _OLD_STACK,
    "_disable_initialize_loss_from_dummy_batch": _OLD_STACK,
    "_tf_policy_handles_more_than_one_loss": _TF,
    "eager_tracing": _TF,
    "eager_max_retraces": _TF,
    "tf_session_args": _TF,
    "local_tf_session_args": _TF,
    "enable_tf1_exec_eagerly": _TF,
    "monitor": "video recording moved to the rollout tool (ppo_inference_ray.py)",
    "log_level": "set Python logging instead; RLlib ignores it on the new stack",
}

# Keys whose every value but one is impossible here: key -> (allowed values, what would be right).
RESTRICTED_KEYS: dict[str, tuple[tuple[object, ...], str]] = {
    "framework": (("torch",), "this project trains with torch: use 'framework: torch' or drop the key"),
    "enable_rl_module_and_learner": ((True,), "PPO here runs on RLlib's new API stack: drop the key"),
    "enable_env_runner_and_connector_v2": ((True,), "PPO here runs on RLlib's new API stack: drop the key"),
    "_enable_new_api_stack": ((True,), "PPO here runs on RLlib's new API stack: drop the key"),
}

# Old `model:` keys -> current DefaultModelConfig field (None: same name).
MODEL_RENAMED_KEYS: dict[str, str] = {
    "post_fcnet_hiddens": "head_fcnet_hiddens",
    "post_fcnet_activation": "head_fcnet_activation",
}

# Old `model:` keys that mean nothing for the new stack's default model -> why.
MODEL_IGNORED_KEYS: dict[str, str] = {
    "dim": "image size comes from the env's observation space; set env_config.observation instead",
    "grayscale": "set the camera format in env_config.observation instead",
    "zero_mean": "set the camera format in env_config.observation instead",
    "framestack": "the new stack stacks frames with a connector, not the model",
    "_disable_preprocessor_api": _OLD_STACK,
    "_disable_action_flattening": _OLD_STACK,
    "_time_major": _OLD_STACK,
    "_use_default_native_models": _OLD_STACK,
    "no_final_linear": _OLD_STACK,
    "custom_preprocessor": _OLD_STACK,
    "encoder_latent_dim": _OLD_STACK,
    "always_check_shapes": _OLD_STACK,
    "lstm_use_prev_action_reward": "split into lstm_use_prev_action and lstm_use_prev_reward on the new stack",
    "use_attention": _OLD_STACK,
}

# Old `model:` keys that cannot be honoured -> what would be right.
MODEL_UNSUPPORTED_KEYS: dict[str, str] = {
    "custom_model": "custom ModelV2 classes do not run on the new stack; write an RLModule",
    "custom_model_config": "custom ModelV2 classes do not run on the new stack; write an RLModule",
    "custom_action_dist": "the new stack takes action distributions from the RLModule",
}

# Settings this project adds to the flat RLlib file (removed before RLlib sees the config).
PROJECT_KEYS: tuple[str, ...] = ("stop", "checkpoint", "augmentation", "torch_threads")
# Their keys are the StopConfig (control/training/stop.py), CheckpointConfig (config_loader.py) and
# AugmentationConfig (control/training/augmentation.py) models.
