"""The real ``Lima2Conductor`` device class on in-memory Lima2 devices (tests only).

``FakeBackedConductor`` replaces ``make_system`` with fakes living in the device server's
process, and adds test-only commands to drive them from the test process.
"""

from __future__ import annotations

import json

from tango.server import command

from lima2_conductor.core.lima2 import DeviceState
from lima2_conductor.core.system import AcquisitionSystem
from lima2_conductor.device.conductor import Lima2Conductor
from lima2_conductor.server.request_thread import request_thread_path
from tests.fakes import FakeSystem


class FakeBackedConductor(Lima2Conductor):
    """Lima2Conductor over ``tests.fakes``."""

    def make_system(self) -> AcquisitionSystem:
        self.fakes = FakeSystem(2)
        return self.fakes.system

    @command(dtype_in=int)
    def FakeEnd(self, frames_per_receiver: int) -> None:
        """Every fake device ends its acquisition with that many frames each."""
        self.fakes.end_acquisition(frames_per_receiver)

    @command(dtype_in=str)
    def FakeState(self, states_json: str) -> None:
        """Set fake device states: {"rcv1": "FAULT", ...}."""
        for name, state in json.loads(states_json).items():
            next(d for d in self.fakes.devices if d.name == name).state = DeviceState[state]

    @command(dtype_in=str)
    def FakeBug(self, command_name: str) -> None:
        """``command_name`` of receiver 0 raises a bug (not a device error); "" clears it."""
        if command_name:
            self.fakes.rcvs[0].fail[command_name] = KeyError("a bug of ours")
        else:
            self.fakes.rcvs[0].fail.clear()

    @command(dtype_out=str)
    def RequestThreadPath(self) -> str:
        """Where the server runs its standard methods (``request_thread_path``)."""
        return request_thread_path()
