"""Editing the ROIs in Flint: ``det.processing.edit_rois()`` and Bliss's
``edit_roi_counters(det)`` (the ``EditRoisCapability`` of the detector object).

ESRF's Flint is not on PyPI: where it is not installed, both raise an error that says
so and how to set the ROIs instead. Where it is, Flint's image plot of the detector
opens with the current ROIs, and the shapes drawn there replace them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bliss.common.capabilities import EditRoisCapability


class FlintUnavailable(RuntimeError):
    """Flint cannot open: the ROI editor is not available in this environment."""


def flint_missing() -> str:
    """Why Flint cannot be used here ("" when it can): the ``flint.client`` Bliss talks
    to must be a real module (PyPI's ``flint`` is another project)."""
    try:
        spec = importlib.util.find_spec("flint.client.proxy")
    except (ImportError, ValueError) as exc:
        spec, why = None, str(exc)
    else:
        why = "no module flint.client.proxy"
    if spec is None or spec.origin is None:
        return (
            f"ESRF Flint is not installed in this Bliss environment ({why}); it is not on PyPI "
            "(install it from the Bliss project)"
        )
    return ""


def edit_rois(det: Any) -> None:
    """Edit ``det``'s ROI statistics and profiles in Flint (which must be running)."""
    why = flint_missing()
    if why:
        raise FlintUnavailable(
            f"{det.name}: cannot open the ROI editor: {why}. Set the ROIs in the shell instead: "
            f"{det.name}.processing.roi_stats.rois = [Roi(x, y, w, h, name='r1'), ...], "
            f"{det.name}.processing.roi_profiles.rois = [RoiProfile(...)]"
        )
    import bliss.common.plot as plot
    from bliss.controllers.lima.roi import ArcRoi, Roi, RoiProfile, flint_to_roi

    processing = det.processing
    live = plot.get_flint().get_live_plot(image_detector=det.name)
    live.focus()
    current = [*processing.roi_stats.rois, *processing.roi_profiles.rois]
    print(f"Waiting for the ROIs of {det.name} to be edited in Flint...")
    shapes = live.select_shapes(
        [roi.to_flint() for roi in current],
        kinds=["lima-rectangle", "lima-arc", "lima-vertical-profile", "lima-horizontal-profile"],
    )
    rois = [flint_to_roi(shape) for shape in shapes]
    processing.roi_stats.rois = [r for r in rois if type(r) in (Roi, ArcRoi)]
    processing.roi_profiles.rois = [r for r in rois if type(r) is RoiProfile]
    print(f"{det.name}: ROIs {', '.join(sorted(r.name for r in rois))}")


class ConductorEditRois(EditRoisCapability):
    """``edit_roi_counters(det)``: the ROI editor of :func:`edit_rois`."""

    def __init__(self, det: Any) -> None:
        self._det = det

    def edit_rois(self, acq_time: float | None = None) -> None:
        if acq_time is not None:
            raise ValueError(f"{self._det.name}: run ct({acq_time}, {self._det.name}) first, then edit_roi_counters")
        edit_rois(self._det)


class EditRoisMixin:
    """``det.processing.edit_rois()``; the class using it has the detector as ``_det``."""

    _det: Any

    def edit_rois(self) -> None:
        """Edit the ROIs in Flint (see :mod:`lima2_conductor.bliss.roi_editor`)."""
        edit_rois(self._det)
