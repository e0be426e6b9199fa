"""Taurus attribute values delivered to Qt slots in the GUI thread.

Taurus calls listeners from Tango's event thread (or its polling thread); a
:class:`Listener` re-emits each new value as a Qt signal, which Qt queues to the thread
of the receiving widget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import taurus
from taurus.core.taurusbasetypes import TaurusEventType
from taurus.external.qt import QtCore

#: Used where the device pushes no change event for an attribute (then Taurus polls).
FALLBACK_POLLING_MS = 1000


def plain(value: Any) -> Any:
    """A Taurus read value without its units (``pint`` quantities carry the number in ``magnitude``)."""
    return getattr(value, "magnitude", value)


class Listener(QtCore.QObject):
    """Calls ``slot(value)`` in the GUI thread for each new value of a Tango attribute."""

    changed = QtCore.pyqtSignal(object)

    def __init__(self, name: str, slot: Callable[[Any], None], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.changed.connect(slot)
        self.attribute = taurus.Attribute(name)
        self.attribute.changePollingPeriod(FALLBACK_POLLING_MS)
        self.attribute.addListener(self)  # Taurus holds listeners weakly: the parent keeps us

    def eventReceived(self, src: Any, evt_type: Any, evt_value: Any) -> None:  # noqa: N802 - Taurus API
        if evt_type in (TaurusEventType.Change, TaurusEventType.Periodic) and evt_value is not None:
            rvalue = getattr(evt_value, "rvalue", None)
            if rvalue is not None:
                self.changed.emit(plain(rvalue))

    def stop(self) -> None:
        self.attribute.removeListener(self)
