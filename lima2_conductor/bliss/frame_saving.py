"""What a scan saves of its frame sources, and where: the acquisition master's part that
follows the scan writer.

Each source in the scan is saved under the scan's prefix plus the source's name; a scan
of one run per point adds the point number, so that no run writes over another's files,
and names the master files of all its points from the first one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ..core.lima2 import master_file_name

logger = logging.getLogger(__name__)


class FrameSavingMixin:
    """The saving of :class:`~.acquisition_master.ConductorAcquisitionMaster`."""

    name: str
    det: Any
    channels: Any
    _counters: Any
    npoints: int
    per_point: bool
    scan_points: int
    _point: int
    _saving: dict[str, Any]
    master_file: tuple[str, str] | None
    master_files: list[tuple[str, str]]

    def set_device_saving(self, directory: str | None, prefix: str | None, force_no_saving: bool = False) -> None:
        """Called by the scan writer: save frames where and as the scan says, or not at all
        (each source's files are named with the scan's prefix plus the source's name)."""
        settings = self.det.processing.saving
        if force_no_saving or not directory or not self.channels or not settings.enabled:
            self._saving = {"enabled": False}
            return
        os.makedirs(directory, exist_ok=True)
        self._saving = {
            "enabled": True,
            "base_path": directory,
            "filename_prefix": prefix or "",
            "nx_detector_name": self.name,
        }

    @property
    def sources(self) -> list[str]:
        """The frame sources whose counters are in the scan (Bliss saves only those)."""
        return [counter.name for counter in self._counters]

    @property
    def main_source(self) -> str:
        """The source whose master file the scan's metadata names: ``frame`` if in the scan."""
        sources = self.sources
        return "frame" if "frame" in sources or not sources else sources[0]

    def _point_saving(self, point: int, source: str = "") -> dict[str, Any]:
        """The saving params of ``source`` (default the main one) in ``point``'s run; one
        run per point saves each under the scan's prefix plus the point number (no run
        writes over another's files)."""
        source = source or self.main_source
        if not self._saving["enabled"] or source not in self.sources:
            return {"enabled": False}
        prefix = f"{self._saving['filename_prefix']}{source}"
        if self.per_point:
            prefix = f"{prefix}_{point:04d}"
        return {**self._saving, "filename_prefix": prefix}

    def _point_master_files(self, dataset: str) -> list[tuple[str, str]]:
        """Master file of every point of a one-run-per-point scan (empty if not saved or
        the number of points is unknown)."""
        if not self._saving["enabled"] or not self.per_point or self.scan_points <= 0:
            return []
        base = self._saving["base_path"]
        return [(os.path.join(base, master_file_name(self._point_saving(p))), dataset) for p in range(self.scan_points)]

    def _run_master_files(self, masters: dict[str, Any]) -> dict[str, Any] | None:
        """After a Prepare: the main source's master file of this run and, one run per
        point, those of every point (what the main image stream reads once saved)."""
        main = self.main_source
        self.master_file = tuple(masters[main]) if main in masters else None  # type: ignore[assignment]
        if not self.per_point:
            return None
        if self._point <= 0 and self.master_file:
            self.master_files = self._point_master_files(self.master_file[1])
            if self.master_files and self.master_files[0] != self.master_file:
                logger.warning(
                    "%s: master files named unlike %s: earlier points not readable", self.name, self.master_file
                )
                self.master_files = []
        return {"frames_per_run": self.npoints, "master_files": [list(m) for m in self.master_files] or None}
