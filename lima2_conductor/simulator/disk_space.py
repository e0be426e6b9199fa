"""Saving on a disk that fills up, without breaking HDF5.

When a write or a close fails for lack of space, HDF5 (1.14 and 2.0 alike) is left with
objects that crash the process once they are freed, at the latest at exit. So a writer
checks the free space before each write, with the chunk cache off (a chunk goes to disk
when it is written, so that ``statvfs`` tells the truth) and a reserve for the metadata
that closing the file writes: the run fails with a clear "disk full" error and the file
closes cleanly, readable up to its last frame.

Should HDF5 fail anyway (another process filled the disk between the check and the
write), its objects are kept here for the life of the process (:data:`BROKEN`) and the
server ends with :func:`exit_without_freeing` instead of freeing them.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from typing import Any

RESERVE_BYTES = 64 * 1024
"""Free space left for the metadata that closing a file writes."""

WRITERS_PER_DISK = 1
"""Receivers that may write to the same disk at the same moment (set by the receivers:
their number). The check asks room for a write of the same size by each, twice over."""

BROKEN: list[Any] = []
"""HDF5 objects of files whose write or close failed: never freed."""

logger = logging.getLogger(__name__)


def require_space(directory: str, nbytes: int) -> None:
    """Raise ``OSError(ENOSPC)`` unless ``directory``'s disk has room for ``nbytes`` more
    (as many for each other writer of the disk, twice over) and the closing reserve."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    need = 2 * WRITERS_PER_DISK * nbytes + RESERVE_BYTES
    if free < need:
        raise OSError(
            errno.ENOSPC,
            f"No space left on device: {free} bytes free in {directory}, {need} needed to write "
            f"{nbytes} bytes safely ({WRITERS_PER_DISK} receiver(s) may share the disk)",
        )


def keep_broken(*objects: Any) -> None:
    """Keep the HDF5 objects of a failed file alive: freeing them would crash."""
    BROKEN.extend(o for o in objects if o is not None)


def exit_without_freeing(status: int = 0) -> None:
    """End the process now if HDF5 objects are broken (normal exit would free them and
    crash); otherwise return, for the normal exit."""
    if not BROKEN:
        return
    logger.warning("%d HDF5 object(s) of failed files left open: exiting without freeing them", len(BROKEN))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
