"""Pure core: everything that decides. Never imports tango."""
