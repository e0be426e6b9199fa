"""The user's tools: the ``lima2-tango-conductor`` command (:mod:`.commands`), the
itango shell (:mod:`.shell`), the local system launcher (:mod:`.launcher`), one
acquisition with its progress (:mod:`.acquire`, :mod:`.progress_display`), registration
in a Tango database (:mod:`.registration`) and concurrent clients (:mod:`.stress`)."""
