"""``lima2-tango-conductor shell``: IPython with itango against NosqlTangoDB, from a fresh HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lima2_conductor.cli.launcher import CONDUCTOR, LocalSystem

SCRIPT = """\
print("NAMES", sorted(k for k in ("conductor", "acquisition", "detector", "pipeline", "run_acquisition") if k in globals()))
print("DEVICE", Device is tango.DeviceProxy, Device("{device}").State())
print("COMPLETE", get_ipython().complete("", 'd = Device("{prefix}', len('d = Device("{prefix}'))[1])
print("CLASS", get_ipython().complete("", 'Lima2Conductor("', len('Lima2Conductor("'))[1])
print("MAGICS", sorted(m for m in ("lsdev", "mon", "refreshdb") if m in get_ipython().magics_manager.magics["line"]))
print("STATE", acquisition.state()[0], detector.info()["plugin"])
%lsdev
"""


MARKERS = ("NAMES", "DEVICE", "COMPLETE", "CLASS", "MAGICS", "STATE")


def test_shell_loads_itango_against_nosqltangodb(system2c: LocalSystem, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "TANGO_HOST": system2c.tango_host}
    env.pop("IPYTHONDIR", None)
    out = subprocess.run(
        [sys.executable, "-m", "lima2_conductor.cli", "shell", CONDUCTOR],
        input=SCRIPT.format(device=CONDUCTOR, prefix=CONDUCTOR[:12]),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Error in loading extension" not in text and "Traceback" not in text, text
    lines = {m: next((ln for ln in out.stdout.splitlines() if f"{m} " in ln), "") for m in MARKERS}
    assert "['acquisition', 'conductor', 'detector', 'pipeline', 'run_acquisition']" in lines["NAMES"], text
    assert "DEVICE True" in lines["DEVICE"] and "ON" in lines["DEVICE"], text
    assert f"'{CONDUCTOR}'" in lines["COMPLETE"], text
    assert f"'{CONDUCTOR}'" in lines["CLASS"], text
    assert "['lsdev', 'mon', 'refreshdb']" in lines["MAGICS"], text
    assert "Simulator" in lines["STATE"], text
    assert "Lima2Conductor" in out.stdout and "LimaSimulatorReceiver" in out.stdout  # %lsdev
