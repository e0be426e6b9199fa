"""The master file of a run: where it goes and which saved frames it maps.

One master file per saved source, ``{base_path}/{filename_prefix}_master.h5``, in the
official conductor's layout, so that its readers open ours unchanged: the frames at
``<entry>/<instrument>/<detector>/data``, links ``<entry>/measurement/data`` (and
``<detector>/plot/data`` for a dense source), NeXus classes, the acquisition params, processing
params, ``det_info`` and the Prepare's ``masterfile_metadata`` as nested groups under the
detector; added, ``<entry>/conductor`` with the run's UUID.

This module holds the part every kind shares: a channel's saving parameters
(:class:`Saving`) and the mappings of saved frames onto the receivers' files. The files
themselves: :mod:`~lima2_conductor.core.master_dense` (a virtual dataset over the
receivers' files), :mod:`~lima2_conductor.core.master_sparse` (sparse frames, copied),
both published complete by :mod:`~lima2_conductor.core.master_publish`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import lima2
from .errors import SavingError
from .topology import FileMapping, FileNamer, Locator


@dataclass(frozen=True)
class Saving:
    """The saving parameters of one channel that the master file needs."""

    params: dict[str, Any]

    @staticmethod
    def from_params(saving: dict[str, Any]) -> Saving:
        return Saving(dict(saving))

    @property
    def base_path(self) -> str:
        return str(self.params["base_path"])

    @property
    def nb_frames_per_file(self) -> int:
        return int(self.params["nb_frames_per_file"])

    @property
    def nb_dimensions(self) -> str:
        return str(self.params["nb_dimensions"])

    @property
    def entry(self) -> str:
        return str(self.params["nx_entry_name"])

    @property
    def instrument(self) -> str:
        return str(self.params["nx_instrument_name"])

    @property
    def detector(self) -> str:
        return str(self.params["nx_detector_name"])

    @property
    def master_path(self) -> str:
        return os.path.join(self.base_path, lima2.master_file_name(self.params))

    @property
    def data_path(self) -> str:
        return lima2.frames_dataset(self.params)

    @property
    def overwrite(self) -> bool:
        """Whether the master file may replace any file at its path."""
        return self.params.get("file_exists_policy", "abort") == "overwrite"

    def file_name(self, rank: int, file_idx: int) -> str:
        return lima2.data_file_name(self.params, rank, file_idx)

    def check_target(self) -> None:
        """Refuse at Prepare a master file that could not be written."""
        if not os.path.isdir(self.base_path):
            raise SavingError(f"saving directory {self.base_path!r} does not exist")
        if not os.access(self.base_path, os.W_OK | os.X_OK):
            raise SavingError(f"saving directory {self.base_path!r} is not writable")
        policy = self.params.get("file_exists_policy", "abort")
        if os.path.exists(self.master_path) and policy != "overwrite":
            raise SavingError(f"{self.master_path} exists and file_exists_policy is {policy!r}")


def gapped_layout(
    locator: Locator, saved: Sequence[int], per_file: int, name: FileNamer
) -> tuple[int, list[FileMapping], list[int]]:
    """Frame count, file mappings and missing frames of **every** saved frame (not only
    the contiguous prefix): up to the last frame any receiver saved; the frames in
    between that no receiver saved are missing (the virtual dataset's fill value)."""
    return locator.saved_mappings(saved, per_file, name)


def layout(locator: Locator, saved: list[int], saving: Saving) -> tuple[int, list[FileMapping]]:
    """Frame count and file mappings of the contiguous prefix of saved frames."""
    return locator.file_mappings(saved, saving.nb_frames_per_file, saving.file_name)
