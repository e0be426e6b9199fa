"""The Taurus panel of a conductor (``lima2-tango-conductor gui``; needs the ``gui`` extra)."""
