"""``python -m lima2_conductor.gui [DEVICE]``: the panel, like ``lima2-tango-conductor gui``."""

import sys

from ..cli.launcher import CONDUCTOR
from .panel import run_panel

sys.exit(run_panel(sys.argv[1] if len(sys.argv) > 1 else CONDUCTOR))
