"""Tango adapters implementing the core's ports over ``tango.asyncio.DeviceProxy``."""
