"""What the conductor caches about the detector (from the control device), and typed views."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import ConductorError
from .lima2 import DEFAULT_PIXEL_TYPE
from .ports import ControlPort

logger = logging.getLogger(__name__)
NAMES = ("det_info", "det_capabilities", "det_status")


@dataclass
class DetectorCache:
    """``det_info`` and ``det_capabilities`` read when the control (re)connects,
    ``det_status`` refreshed every ``status_period_s``."""

    status_period_s: float = 1.0
    values: dict[str, dict[str, Any]] = field(default_factory=lambda: {n: {} for n in NAMES})
    read_at: float = 0.0
    complete: bool = False

    def due(self, now: float | None = None) -> bool:
        return not self.complete or (now or time.monotonic()) - self.read_at > self.status_period_s

    def forget(self) -> None:
        """The control restarted: read everything again."""
        self.complete = False

    async def refresh(self, control: ControlPort, timeout_s: float) -> None:
        names = NAMES if not self.complete else ("det_status",)
        complete = True
        for name in names:
            try:
                self.values[name] = await asyncio.wait_for(getattr(control, name)(), timeout_s)
            except (ConductorError, TimeoutError) as exc:  # keep the cached value
                logger.debug("%s: %s", name, exc)
                complete = False
        self.complete = self.complete or complete
        self.read_at = time.monotonic()

    # -- typed views ------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        return self.values["det_info"]

    @property
    def capabilities(self) -> dict[str, Any]:
        return self.values["det_capabilities"]

    @property
    def status(self) -> dict[str, Any]:
        return self.values["det_status"]

    @property
    def plugin(self) -> str:
        return str(self.info.get("plugin", ""))

    @property
    def model(self) -> str:
        return str(self.info.get("model", ""))

    @property
    def width(self) -> int:
        return int(self.info.get("dimensions", {}).get("x", 0))

    @property
    def height(self) -> int:
        return int(self.info.get("dimensions", {}).get("y", 0))

    @property
    def pixel_size(self) -> list[float]:
        ps = self.info.get("pixel_size", {})
        return [float(ps.get("x", 0.0)), float(ps.get("y", 0.0))]

    @property
    def trigger_modes(self) -> list[str]:
        return [str(m) for m in self.capabilities.get("trigger_modes", [])]

    def pixel_type(self) -> str:
        """The detector's pixel type when it says one, else the default one when it offers
        it (what a Prepare with the default params makes), else the first it offers."""
        if "pixel_type" in self.info:
            return str(self.info["pixel_type"])
        types = [str(t) for t in self.info.get("pixel_types") or []]
        if DEFAULT_PIXEL_TYPE in types:
            return DEFAULT_PIXEL_TYPE
        return types[0] if types else ""
