"""python -m control.export -n NAME [--checkpoint PATH]: see control/export/cli.py."""
import sys

from control.export.cli import main

sys.exit(main())
