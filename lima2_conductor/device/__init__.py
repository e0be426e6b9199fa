"""The ``Lima2Conductor`` Tango device."""
