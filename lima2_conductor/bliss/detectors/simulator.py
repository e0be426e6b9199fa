"""``det.detector`` of the simulated detector (det_info plugin ``Simulator``).

The names are those of Bliss's Lima2 simulator plugin (``det.detector.generator.type``,
``.pixel_type``, ``.peaks``..., ``det.detector.dispatch``); each is a field of the
control's ``det`` params (:func:`lima2_conductor.simulator.schemas.acq_params_schema`).
``dispatch`` must match the conductor's topology (round robin unless it is configured
otherwise).
"""

from __future__ import annotations

from . import DetectorPlugin


class Detector(DetectorPlugin):
    """The simulated detector's frame generator and frame dispatch."""

    settings = {
        "generator.type": "det.generator.type",
        "generator.pixel_type": "det.generator.pixel_type",
        "generator.nb_channels": "det.generator.nb_channels",
        "generator.peaks": "det.generator.gauss.peaks",
        "generator.grow_factor": "det.generator.gauss.grow_factor",
        "generator.diffraction": "det.generator.diffraction",
        "dispatch": "det.dispatch_mode",
        "nb_prefetch_frames": "det.nb_prefetch_frames",
    }
