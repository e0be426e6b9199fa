"""Runs the conductor panel offscreen and answers commands read on stdin, one JSON line
on stdout each: ``show`` (what the panel displays), ``click COMMAND``, ``grab PATH``
(a PNG of the window), ``quit``. Prints ``{"ready": true}`` first.

A separate process: the panel is a Tango client, and a process binds to one database.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from taurus.external.qt import Qt  # noqa: E402

from lima2_conductor.gui.panel import SIZE, ConductorPanel, make_app  # noqa: E402


def answer(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    app = make_app()
    panel = ConductorPanel(sys.argv[1])
    panel.resize(*SIZE)
    panel.show()

    def on_line() -> None:
        line = sys.stdin.readline()
        cmd, _, arg = line.strip().partition(" ")
        if not line or cmd == "quit":
            answer({"bye": True})
            app.quit()
        elif cmd == "show":
            answer(panel.displayed())
        elif cmd == "click":
            panel.buttons[arg].click()
            answer({"clicked": arg})
        elif cmd == "grab":
            answer({"saved": bool(panel.grab().save(arg, "PNG"))})
        else:
            answer({"error": f"unknown command {cmd!r}"})

    notifier = Qt.QSocketNotifier(sys.stdin.fileno(), Qt.QSocketNotifier.Read)
    notifier.activated.connect(on_line)
    answer({"ready": True})
    return int(app.exec_())


if __name__ == "__main__":
    sys.exit(main())
