"""Bliss controller for the Lima2 Tango conductor.

Declared in a Beacon YAML file as::

    - name: det
      plugin: generic
      package: lima2_conductor.bliss
      class: Lima2
      tango_name: id00/lima2conductor/simulator

Importing this package needs no Bliss: the controller module (which imports Bliss) is
loaded on first use of :class:`Lima2`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Lima2"]


def __getattr__(name: str) -> Any:
    if name == "Lima2":
        from .controller import Lima2

        return Lima2
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
