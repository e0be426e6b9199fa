"""Tango access control (TAC) on the real database (the tier's last module: a client
process keeps the access rights it found, and this one's may be read-only afterwards): a read-only user reads everything
and calls the commands ``register`` lists in ``AllowedAccessCmd``, and is refused every
command and write that changes something; a conductor with read-only access to a
processing device says so by name."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator

import pytest
import tango

from lima2_conductor.cli.launcher import CONDUCTOR, Layout, wait_for
from lima2_conductor.cli.registration import CONDUCTOR_READ_ONLY_COMMANDS

from .tango_services import SKIP, SKIP_REASON, RealTangoSystem, spawn

pytestmark = [
    pytest.mark.skipif(SKIP, reason=SKIP_REASON),
    pytest.mark.skipif(os.geteuid() != 0, reason="a client as another user takes root (seteuid)"),
]

LAYOUT = Layout()
TAC = "sys/access_control/1"
READER = pwd.getpwnam("nobody")
ROI = {"topleft": {"x": 0, "y": 8}, "dimensions": {"x": 16, "y": 16}}
ACTING = ["Prepare", "Start", "Trigger", "Stop", "Close", "Reset", "Init"]


def grant(services: RealTangoSystem, user: str, device: str, rights: str) -> None:
    """A row of the TAC tables (MariaDB's strict mode wants ``updated`` and ``accessed``)."""
    services.sql(
        f"insert into access_device (user, device, rights, updated, accessed) "
        f"values ('{user}', '{device}', '{rights}', now(), now())"
    )


@pytest.fixture(scope="module")
def tac(services: RealTangoSystem) -> Iterator[RealTangoSystem]:
    """Access control enabled (``nobody`` may only read), then the servers started: a
    server started before TAC was enabled ignores it."""
    services.register()
    db = services.database()
    db.put_property("CtrlSystem", {"Services": [f"AccessControl/tango:{TAC}"]})
    grant(services, READER.pw_name, "*/*/*", "read")
    proc = spawn(services, "tac", ["/usr/lib/tango/TangoAccessControl", "1"], env={"SUPER_TANGO": "true"})
    try:
        t = services.proxy(TAC)
        wait_for(lambda: t.State() is not None, 60, "TangoAccessControl", 0.2)
        services.start_simulators(LAYOUT)
        services.start_conductor(LAYOUT)
        yield services
    finally:
        services.stop_layout(LAYOUT)
        services.sql("delete from property where object = 'CtrlSystem' and name = 'Services'")
        proc.stop()
        services.processes.pop("tac", None)
        services.sql("delete from access_device where user != '*'")


@pytest.fixture
def acquired(tac: RealTangoSystem) -> tango.DeviceProxy:
    """A finished run with ROI statistics, frames and reduced data to read."""
    c = tac.idle_conductor(CONDUCTOR)
    c.acq_nb_frames = 20
    c.acq_expo_time = 0.002
    c.Prepare(json.dumps({"processing": {"statistics": {"enabled": True, "rect_rois": [ROI]}}}))
    c.Start()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 60, "end of run")
    assert c.run_state == "DONE", c.Status()
    return c


READER_CODE = """
conductor, acting = sys.argv[1], json.loads(sys.argv[2])
c = tango.DeviceProxy(conductor)
out = {"read": {}, "calls": {}, "refused": {}, "writes": {}}

def reason(fn):
    try:
        fn()
        return "ok"
    except tango.DevFailed as exc:
        return exc.args[0].reason

for name in c.get_attribute_list():
    out["read"][name] = reason(lambda: c.read_attribute(name))
calls = {
    "State": lambda: c.State(),
    "Status": lambda: c.Status(),
    "GetInfo": lambda: c.GetInfo(),
    "DefaultParams": lambda: c.DefaultParams(),
    "ParamsSchema": lambda: c.ParamsSchema(),
    "Lookup": lambda: c.Lookup(3),
    "GetFrame": lambda: c.GetFrame([[3], ["frame"]]),
    "GetFrame(-1)": lambda: c.GetFrame([[-1], ["frame"]]),
    "GetReducedData": lambda: c.GetReducedData([[0, 0, 0], ["roi_stats"]]),
}
for name, fn in calls.items():
    out["calls"][name] = reason(fn)
for name in acting:
    arg = ("",) if name == "Prepare" else ()
    out["refused"][name] = reason(lambda: c.command_inout(name, *arg))
for info in c.attribute_list_query():
    if info.writable != tango.AttrWriteType.READ:
        value = c.read_attribute(info.name).value
        out["writes"][info.name] = reason(lambda: c.write_attribute(info.name, value))
proc = tango.DeviceProxy(json.loads(c.GetInfo())["processing"][0])
out["processing"] = {
    "getFrame": reason(lambda: proc.getFrame(-1)),
    "last_frames": reason(lambda: proc.last_frames),
    "popRoiStatistics": reason(lambda: proc.popRoiStatistics()),
}
print(json.dumps(out))
"""


def test_read_only_user(tac: RealTangoSystem, acquired: tango.DeviceProxy) -> None:
    out = json.loads(tac.run_python(READER_CODE, CONDUCTOR, json.dumps(ACTING), user=READER.pw_uid))
    assert out["read"] and set(out["read"].values()) == {"ok"}, out["read"]
    assert set(out["calls"]) - {"State", "Status"} <= {c for c in CONDUCTOR_READ_ONLY_COMMANDS} | {"GetFrame(-1)"}
    assert out["calls"] == dict.fromkeys(out["calls"], "ok")
    assert out["refused"] == dict.fromkeys(ACTING, "API_ReadOnlyMode")
    assert out["writes"] and out["writes"] == dict.fromkeys(out["writes"], "API_ReadOnlyMode")
    assert out["processing"] == {"getFrame": "ok", "last_frames": "ok", "popRoiStatistics": "API_ReadOnlyMode"}
    # the refused calls changed nothing
    c = acquired
    assert c.run_state == "DONE" and c.acq_nb_frames == 20


def test_conductor_with_read_only_access_to_processing_says_so(tac: RealTangoSystem) -> None:
    """The conductor's user may only read the processing devices and their class lists
    no getter: GetFrame names the denial and the device (not NOT_FOUND)."""
    # SQL: this process's own database client may have been made read-only by TAC
    tac.sql("delete from property_class where class = 'LimaProcessingLegacy' and name = 'AllowedAccessCmd'")
    grant(tac, "root", "*/*/*", "write")
    grant(tac, "root", "*/limaprocessing/*", "read")
    try:
        tac.processes.pop(LAYOUT.conductor_instance).stop()
        tac.start_conductor(LAYOUT)  # a new client: no cached rights
        c = tac.proxy(CONDUCTOR)
        wait_for(lambda: c.State() != tango.DevState.INIT, 30, "conductor answering")
        c.Reset()
        c.acq_nb_frames = 20
        c.acq_expo_time = 0.002
        c.Prepare("")
        c.Start()
        wait_for(lambda: c.run_state in ("DONE", "FAULT"), 60, "end of run")
        assert c.run_state == "DONE", c.Status()
        processing = json.loads(c.GetInfo())["processing"]
        for idx in (-1, 3):
            with pytest.raises(tango.DevFailed) as info:
                c.GetFrame([[idx], ["frame"]])
            err = info.value.args[0]
            assert err.reason == "ACCESS_DENIED", (idx, err.reason, err.desc)
            assert "access denied" in err.desc and any(p in err.desc for p in processing), err.desc
    finally:
        tac.sql("delete from access_device where user = 'root'")
        tac.register()  # AllowedAccessCmd back
        tac.processes.pop(LAYOUT.conductor_instance).stop()
        tac.start_conductor(LAYOUT)
