"""The conductor's Taurus panel: State and Status, settings, commands, progress,
receiver states and the live image."""

from __future__ import annotations

import sys
from typing import Any

import taurus
from taurus.external.qt import Qt  # selects the Qt binding before pyqtgraph does
from taurus.qt.qtgui.application import TaurusApplication
from taurus.qt.qtgui.button import TaurusCommandButton
from taurus.qt.qtgui.display import TaurusLabel, TaurusLed
from taurus.qt.qtgui.panel import TaurusForm

from .listen import FALLBACK_POLLING_MS, Listener
from .widgets import CounterBars, LiveImage, ReceiverStates, title_font

SETTINGS = (
    "acq_nb_frames",
    "acq_expo_time",
    "acq_latency_time",
    "acq_trigger_mode",
    "saving_enabled",
    "saving_directory",
    "saving_prefix",
)
SIZE = (1200, 900)
#: (command, parameters): Prepare takes the params JSON, "" = the settings above.
COMMANDS = (("Prepare", [""]), ("Start", []), ("Stop", []), ("Reset", []))


class ConductorPanel(Qt.QWidget):
    """All of a conductor on one page; every value comes from Taurus (events where the
    device pushes them)."""

    def __init__(self, device: str, parent: Qt.QWidget | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.setWindowTitle(f"Lima2 conductor {device}")
        left = Qt.QVBoxLayout()
        left.addWidget(self._state_box())
        left.addWidget(self._settings_box())
        left.addWidget(self._commands_box())
        left.addWidget(self._progress_box())
        left.addWidget(self._receivers_box(), 1)
        self.image = LiveImage(device, self)
        self.image.setMinimumSize(420, 380)
        layout = Qt.QHBoxLayout(self)
        layout.addLayout(left, 0)
        layout.addWidget(self.image, 1)

    def _model(self, attr: str) -> str:
        return f"{self.device}/{attr}"

    def _state_box(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox(self.device, self)
        grid = Qt.QGridLayout(box)
        self.led = TaurusLed(box)
        self.led.setModel(self._model("State"))
        self.led.setFixedSize(32, 32)
        self.state = TaurusLabel(box)
        self.state.setModel(self._model("State"))
        title_font(self.state)
        self.run_state = TaurusLabel(box)
        self.run_state.setModel(self._model("run_state"))
        self.rate = TaurusLabel(box)
        self.rate.setModel(self._model("frame_rate"))
        for label in (self.state, self.run_state, self.rate):
            label.setAutoTrim(False)  # else a value wider than the label turns into a "..." link
            label.setMinimumWidth(110)
        self.status = Qt.QLabel(box)  # multi-line: a TaurusLabel would fold it into a link
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.Qt.PlainText)
        self.status_listener = Listener(self._model("Status"), self.status.setText, self)
        self.status.setAlignment(Qt.Qt.AlignLeft | Qt.Qt.AlignTop)
        self.status.setMinimumHeight(48)
        grid.addWidget(self.led, 0, 0)
        grid.addWidget(self.state, 0, 1)
        grid.addWidget(Qt.QLabel("run"), 0, 2)
        grid.addWidget(self.run_state, 0, 3)
        grid.addWidget(Qt.QLabel("rate"), 0, 4)
        grid.addWidget(self.rate, 0, 5)
        grid.addWidget(self.status, 1, 0, 1, 6)
        return box

    def _settings_box(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Acquisition settings (used by the next Prepare)", self)
        self.settings = TaurusForm(box)
        self.settings.setWithButtons(False)
        self.settings.setModel([self._model(a) for a in SETTINGS])
        self.settings.setMinimumHeight(34 * len(SETTINGS))
        for value in self.settings:
            read = value.readWidget()
            if hasattr(read, "setAutoTrim"):
                read.setAutoTrim(False)  # show "0.050000", not a "..." link
                read.setMinimumWidth(90)
        Qt.QVBoxLayout(box).addWidget(self.settings)
        return box

    def _commands_box(self) -> Qt.QWidget:
        box = Qt.QWidget(self)
        row = Qt.QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, TaurusCommandButton] = {}
        for command, params in COMMANDS:
            button = TaurusCommandButton(box, command=command, parameters=params, text=command)
            button.setModel(self.device)
            self.buttons[command] = button
            row.addWidget(button)
        return box

    def _progress_box(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Progress (frames)", self)
        self.counters = CounterBars(self.device, box)
        Qt.QVBoxLayout(box).addWidget(self.counters)
        return box

    def _receivers_box(self) -> Qt.QGroupBox:
        box = Qt.QGroupBox("Lima2 devices", self)
        self.receivers = ReceiverStates(self.device, box)
        Qt.QVBoxLayout(box).addWidget(self.receivers)
        return box

    def displayed(self) -> dict[str, Any]:
        """What the panel shows now (for tests and scripts)."""
        return {
            "state": self.state.text(),
            "run_state": self.run_state.text(),
            "status": self.status.text(),
            "counters": self.counters.displayed(),
            "devices": self.receivers.displayed(),
            "image": self.image.displayed(),
        }


def make_app(argv: list[str] | None = None) -> TaurusApplication:
    """The Taurus application (one per process)."""
    app = TaurusApplication.instance()
    if app is None:
        app = TaurusApplication(list(argv or sys.argv[:1]), cmd_line_parser=None, app_name="lima2-conductor-panel")
        taurus.changeDefaultPollingPeriod(FALLBACK_POLLING_MS)  # where the device pushes no events
    return app


def run_panel(device: str) -> int:
    """Show the panel of ``device`` until its window is closed."""
    app = make_app()
    panel = ConductorPanel(device)
    panel.resize(*SIZE)
    panel.show()
    return int(app.exec_())
