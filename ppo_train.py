"""Train a PPO racing policy: python ppo_train.py CONFIG [-n NAME] [--stop_duration 30m] ... (see --help)."""
import sys

from control.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
