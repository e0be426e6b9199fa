"""The panel's own widgets: progress bars, receiver states and the live image."""

from __future__ import annotations

import json
from typing import Any

import numpy
import pyqtgraph as pg
from taurus.external.qt import Qt, QtGui

from .listen import Listener

COUNTERS = (
    ("nb_frames_acquired", "acquired"),
    ("nb_frames_xferred", "transferred"),
    ("nb_frames_processed", "processed"),
    ("nb_frames_saved", "saved"),
)

#: Colours of the Lima2 devices' acq_state, after the Tango state colours the conductor maps them to.
STATE_COLOURS = {
    "IDLE": "#00ff00",  # ON
    "PREPARED": "#ffff00",  # STANDBY
    "RUNNING": "#0080c0",  # RUNNING
    "STOPPED": "#00ff00",
    "FAULT": "#ff0000",
    "TERMINATE": "#ff0000",
    "OFFLINE": "#ff00ff",  # DISABLE
}


class CounterBars(Qt.QWidget):
    """One bar per progress counter, each out of ``nb_frames`` (busy bars when endless)."""

    def __init__(self, device: str, parent: Qt.QWidget | None = None) -> None:
        super().__init__(parent)
        layout = Qt.QFormLayout(self)
        self.bars: dict[str, Qt.QProgressBar] = {}
        self._values = {name: 0 for name, _ in COUNTERS}
        self._total = 0
        for name, label in COUNTERS:
            bar = Qt.QProgressBar(self)
            bar.setFormat("%v / %m")
            bar.setMaximum(1)
            self.bars[name] = bar
            layout.addRow(label, bar)
        self.listeners = [Listener(f"{device}/nb_frames", self._set_total, self)]
        for name, _ in COUNTERS:
            self.listeners.append(Listener(f"{device}/{name}", lambda v, n=name: self._set_value(n, v), self))

    def _set_total(self, value: Any) -> None:
        self._total = int(value)
        for name in self.bars:
            self._show(name)

    def _set_value(self, name: str, value: Any) -> None:
        self._values[name] = int(value)
        self._show(name)

    def _show(self, name: str) -> None:
        bar, value = self.bars[name], self._values[name]
        if self._total > 0:
            bar.setMaximum(self._total)
            bar.setValue(min(value, self._total))
            bar.setFormat("%v / %m")
        else:  # endless: the count, with a full bar while frames come
            bar.setMaximum(max(1, value))
            bar.setValue(value)
            bar.setFormat(f"{value} (endless)" if value else "0")

    def displayed(self) -> dict[str, list[int]]:
        return {name: [bar.value(), bar.maximum()] for name, bar in self.bars.items()}


class ReceiverStates(Qt.QTableWidget):
    """The control's and receivers' ``acq_state``, from the conductor's ``device_states`` (JSON)."""

    def __init__(self, device: str, parent: Qt.QWidget | None = None) -> None:
        super().__init__(0, 2, parent)
        self.setHorizontalHeaderLabels(["device", "acq_state"])
        self.verticalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)
        self.setEditTriggers(Qt.QAbstractItemView.NoEditTriggers)
        self.setMinimumHeight(150)
        self.states: dict[str, str] = {}
        self.listeners = [Listener(f"{device}/device_states", self._update, self)]

    def _update(self, value: Any) -> None:
        try:
            self.states = dict(json.loads(value))
        except (TypeError, ValueError):
            return
        self.setRowCount(len(self.states))
        for row, (name, state) in enumerate(self.states.items()):
            state_item = Qt.QTableWidgetItem(state)
            state_item.setBackground(QtGui.QColor(STATE_COLOURS.get(state, "#c0c0c0")))
            self.setItem(row, 0, Qt.QTableWidgetItem(name))
            self.setItem(row, 1, state_item)
        self.resizeColumnToContents(0)

    def displayed(self) -> dict[str, str]:
        return {self.item(r, 0).text(): self.item(r, 1).text() for r in range(self.rowCount())}


class LiveImage(pg.GraphicsLayoutWidget):
    """``last_image`` on change events, with a colour bar (levels follow each frame)."""

    def __init__(self, device: str, parent: Qt.QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = self.addPlot(title="last_image")
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)  # row 0 at the top, as detectors show it
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colour_bar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False)
        self.colour_bar.setImageItem(self.image, insert_in=self.plot)
        self.frame_idx = -1
        self.updates = 0
        self.shape: tuple[int, ...] = ()
        self.levels = (0.0, 1.0)
        self.listeners = [
            Listener(f"{device}/last_image", self._show_image, self),
            Listener(f"{device}/last_image_ready", self._show_index, self),
        ]

    def _show_image(self, value: Any) -> None:
        frame = numpy.asarray(value, dtype=numpy.float32)
        if frame.ndim != 2 or frame.size <= 1:
            return
        lo, hi = float(frame.min()), float(frame.max())
        self.levels = (lo, hi if hi > lo else lo + 1.0)
        self.image.setImage(frame, autoLevels=False)
        self.colour_bar.setLevels(self.levels)
        self.shape = frame.shape
        self.updates += 1

    def _show_index(self, value: Any) -> None:
        self.frame_idx = int(value)
        self.plot.setTitle(f"last_image: frame {self.frame_idx}" if self.frame_idx >= 0 else "last_image")

    def displayed(self) -> dict[str, Any]:
        attr = self.listeners[0].attribute
        return {
            "frame": self.frame_idx,
            "shape": list(self.shape),
            "levels": list(self.levels),
            "updates": self.updates,
            "events": bool(attr.isUsingEvents()),
            "polled": bool(attr.isPollingActive()),
        }


def title_font(widget: Qt.QWidget, scale: float = 1.3) -> None:
    """A bigger bold font for a headline widget."""
    font = widget.font()
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    widget.setFont(font)
