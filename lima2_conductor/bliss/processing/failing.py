"""``failing``: the test pipeline that fails on demand (no frames, no reduced data).

``failed_on_prepare``, ``failed_on_activate`` (at start) and ``failed_frame_idx`` (the
global index of the frame that fails; 0: never). Its one counter is Bliss's ``frame``,
which the class does not make: a scan with it runs (and fails) the pipeline, and its
frame stream answers with the conductor's reason.
"""

from __future__ import annotations

from typing import Any

from ..settings import settings_group
from .common import Image, ProcessingPlugin

Knobs = settings_group("Failing", {"failed_on_prepare": False, "failed_on_activate": False, "failed_frame_idx": 0})


class Failing(ProcessingPlugin):
    name = "failing"
    images = (Image("frame"),)
    has_rois = False

    def __init__(self, det: Any, key: str) -> None:
        super().__init__(det, key)
        object.__setattr__(self, "_knobs", Knobs(f"{key}:failing"))

    def __getattr__(self, name: str) -> Any:
        if name in Knobs._defaults:
            return getattr(self._knobs, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in Knobs._defaults:
            setattr(self._knobs, name, value)
        else:
            object.__setattr__(self, name, value)

    def clear(self) -> None:
        """No failure in the next runs."""
        self._knobs.reset()

    def params(self, saving_of: Any) -> dict[str, Any]:
        return {"class_name": self.class_name, **self._knobs.as_dict()}

    def __info__(self) -> str:
        return f"Plugin failing ({self.class_name})\n" + self._knobs.__info__()
