"""Entry point: `python -m control.bench [env ...] [--json out.json]` (see control/bench/cli.py)."""
import sys

from control.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
