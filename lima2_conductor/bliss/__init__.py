"""Bliss controller for the Lima2 Tango conductor.

Declared in a Beacon YAML file as::

    - name: det
      plugin: generic
      package: lima2_conductor.bliss
      class: Lima2Conductor
      tango_name: id00/lima2conductor/simulator

Importing this package needs no Bliss: the controller module (which imports Bliss) is
loaded on first use of :class:`Lima2Conductor`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Lima2Conductor"]


def __getattr__(name: str) -> Any:
    if name == "Lima2Conductor":
        from .controller import Lima2Conductor

        return Lima2Conductor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
