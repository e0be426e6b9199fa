"""``python -m lima2_conductor.cli``: the ``lima2-tango-conductor`` command."""

from .commands import main

raise SystemExit(main())
