"""lima2-tango-conductor: one Tango device that conducts a distributed Lima2 acquisition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lima2-tango-conductor")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0"
