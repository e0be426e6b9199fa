"""The conductor's own cost while a run goes on, against the number of receivers.

For 1, 4, 8 and 16 simulated receivers: a 20 s acquisition at a modest frame rate; the
conductor process's CPU (user + sys from ``/proc/<pid>/stat``, in % of one core), the
change events it pushed per second and the remote calls it made per second (its
``GetInfo`` diagnostics), and the monitor's poll period then: the period stretches so
that polling stays within its CPU budget. Target: at most 15 % of one core with 16
receivers.

Run: ``python benchmarks/bench_cpu.py [--seconds 20] [--rate 50]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import tango

from lima2_conductor.cli.launcher import Layout, running_db, wait_for

COUNTS = (1, 4, 8, 16)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def measure(layout: Layout, pid: int, seconds: float, rate: float) -> tuple[float, float, float, float]:
    c = tango.DeviceProxy(layout.conductor)
    c.acq_nb_frames, c.acq_expo_time = 0, 1.0 / rate
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > layout.nb_receivers, 20, "frames flowing")
    info0 = json.loads(c.GetInfo())["monitor"]
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the measured interval itself, not a wait for a condition
    cpu1, t1 = cpu_seconds(pid), time.monotonic()
    info1 = json.loads(c.GetInfo())["monitor"]
    c.Stop()
    wait_for(lambda: c.run_state in ("STOPPED", "FAULT"), 20, "stopped")
    span = t1 - t0
    return (
        100 * (cpu1 - cpu0) / span,
        (info1["events_pushed"] - info0["events_pushed"]) / span,
        (info1["remote_calls"] - info0["remote_calls"]) / span,
        info1["period_ms"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=50.0, help="frames per second")
    parser.add_argument("--receivers", type=int, nargs="*", default=list(COUNTS))
    args = parser.parse_args()
    layouts = [Layout(n, f"id{n + 30:02d}", sensor=(64, 64)) for n in args.receivers]
    print(f"Conductor CPU during a {args.seconds:.0f} s run at {args.rate:.0f} frames/s (64x64 frames)")
    print(f"{'receivers':>10} {'CPU % core':>11} {'events/s':>9} {'calls/s':>8} {'poll period ms':>15}")
    with tempfile.TemporaryDirectory() as tmp, running_db(layouts, Path(tmp)) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        for layout in layouts:
            system.start_simulators(layout)
            pid = system.start_conductor(layout).pid
            c = tango.DeviceProxy(layout.conductor)
            wait_for(lambda c=c: c.State() == tango.DevState.ON, 30, "conductor")
            cpu, events, calls, period = measure(layout, pid, args.seconds, args.rate)
            target = "  (target <= 15 %)" if layout.nb_receivers == 16 else ""
            print(
                f"{layout.nb_receivers:>10} {cpu:>11.1f} {events:>9.0f} {calls:>8.0f} {period:>15.0f}{target}",
                flush=True,
            )
            system.stop_layout(layout)


if __name__ == "__main__":
    main()
