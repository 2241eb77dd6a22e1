"""Autonomous-racing RL toolkit: tracks, simulators, the RacingEnv, RLlib PPO training and rollouts."""
import sys as _sys

from control.env.registration import register_gym_envs as _register_gym_envs

_register_gym_envs()
if "ray" in _sys.modules:  # only when Ray is in use: importing it costs seconds
    from control.env.registration import register_rllib_envs as _register_rllib_envs

    _register_rllib_envs()
