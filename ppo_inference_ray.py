"""Roll out a trained policy: python ppo_inference_ray.py -n NAME [--episodes 3] [--track hairpins] ... (see --help)."""
import sys

from control.rollout.cli import main

if __name__ == "__main__":
    sys.exit(main())
