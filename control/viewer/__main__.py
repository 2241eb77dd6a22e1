"""python -m control.viewer -n NAME: see control/viewer/cli.py."""
import sys

from control.viewer.cli import main

sys.exit(main())
