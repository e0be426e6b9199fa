"""Simulated Lima2 devices: control, receiver and Legacy processing.

They speak the Tango interface of the Lima2 C++ devices, so that the conductor (and
the lima2-client conductor) cannot tell them apart from the real ones.
"""
