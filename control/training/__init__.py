"""Training: YAML config -> RLlib PPOConfig (new API stack) -> Ray Tune run with checkpoints and stop conditions."""
