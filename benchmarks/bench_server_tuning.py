"""The conductor server's optional process-wide settings, measured side by side.

For each configuration (defaults; ``LIMA2_CONDUCTOR_TRIM_AFTER_LARGE_REQUESTS=0``;
``LIMA2_CONDUCTOR_SWITCH_INTERVAL_S=0.0005``) a fresh conductor on the same simulated
system (two receivers) is measured for:

- ``GetFrame`` of a 512 x 512 frame: client latency next to a direct ``getFrame``, and
  the conductor's CPU per call;
- a progress read while a 1 ms-per-frame run keeps the event loop busy;
- the conductor's resident memory after refused requests: ``--big`` Prepares of 20 MB
  (over the 4 MiB limit, each refused), then as many again from four threads.

Run: ``python benchmarks/bench_server_tuning.py [--calls N] [--big N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time

import tango

from lima2_conductor.cli.launcher import Layout, running_db, wait_for

CONFIGS = {
    "defaults": {},
    "no trim after large requests": {"LIMA2_CONDUCTOR_TRIM_AFTER_LARGE_REQUESTS": "0"},
    "switch interval 0.5 ms": {"LIMA2_CONDUCTOR_SWITCH_INTERVAL_S": "0.0005"},
}
TUNING_VARS = ("LIMA2_CONDUCTOR_TRIM_AFTER_LARGE_REQUESTS", "LIMA2_CONDUCTOR_SWITCH_INTERVAL_S")
BIG = "x" * (20 * 1024 * 1024)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get_frame(c: tango.DeviceProxy, pid: int, calls: int) -> tuple[float, float, float]:
    """Median GetFrame, median direct getFrame (ms), conductor CPU per GetFrame (ms)."""
    c.acq_nb_frames, c.acq_expo_time = 40, 0.001
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.run_state == "DONE", 30, "end")
    w = json.loads(c.Lookup(37))
    direct = tango.DeviceProxy(w["processing_device"])
    ours, plain = [], []
    cpu0 = cpu_s(pid)
    for _ in range(calls):
        t0 = time.perf_counter()
        c.GetFrame([[37], ["frame"]])
        ours.append(time.perf_counter() - t0)
    cpu = (cpu_s(pid) - cpu0) / calls
    for _ in range(calls):
        t0 = time.perf_counter()
        direct.command_inout(w["command"], 37)
        plain.append(time.perf_counter() - t0)
    return statistics.median(ours) * 1e3, statistics.median(plain) * 1e3, cpu * 1e3


def busy_read(c: tango.DeviceProxy, n: int = 400) -> float:
    """Median progress read (ms) during an endless 1 ms-per-frame run."""
    c.acq_nb_frames, c.acq_expo_time = 0, 0.001
    c.Prepare("")
    c.Start()
    out = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            c.read_attribute("nb_frames_xferred")
            out.append(time.perf_counter() - t0)
    finally:
        c.Stop()
        wait_for(lambda: not c.running, 30, "stop")
    return statistics.median(out) * 1e3


def settled_rss_mb(pid: int, quiet_s: float = 1.5, timeout: float = 10.0) -> float:
    """RSS once it has not dropped for ``quiet_s`` (the conductor returns the memory of
    large requests shortly after the last one)."""
    deadline = time.monotonic() + timeout
    low, since = rss_mb(pid), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        time.sleep(0.1)
        now = rss_mb(pid)
        if now < low - 1:
            low, since = now, time.monotonic()
    return low


def refused_requests(name: str, pid: int, count: int) -> tuple[float, float, float]:
    """RSS (MB) before, after ``count`` refused 20 MB Prepares, after as many from 4 threads."""

    def refuse(n: int) -> None:
        c = tango.DeviceProxy(name)
        c.set_timeout_millis(30_000)
        for _ in range(n):
            try:
                c.Prepare(BIG)
            except tango.DevFailed:
                pass

    before = settled_rss_mb(pid)
    refuse(count)
    after = settled_rss_mb(pid)
    threads = [threading.Thread(target=refuse, args=(max(1, count // 4),)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return before, after, settled_rss_mb(pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--big", type=int, default=25)
    args = parser.parse_args()
    layout = Layout(2, "id00")
    with tempfile.TemporaryDirectory() as tmp, running_db([layout], os.path.join(tmp, "sys")) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        system.start_simulators(layout)
        for label, env in CONFIGS.items():
            for var in TUNING_VARS:
                os.environ.pop(var, None)
            os.environ.update(env)
            proc = system.start_conductor(layout)
            try:
                c = tango.DeviceProxy(layout.conductor)
                ours, plain, cpu = get_frame(c, proc.pid, args.calls)
                read = busy_read(c)
                before, after, threaded = refused_requests(layout.conductor, proc.pid, args.big)
            finally:
                system.processes.pop(layout.conductor_instance).stop()
            print(
                f"{label:24s} GetFrame {ours:5.2f} ms, direct {plain:5.2f} ms, ratio {ours / plain:4.2f}, "
                f"conductor CPU {cpu:4.2f} ms/call | busy read {read:5.2f} ms | RSS {before:4.0f} MB -> "
                f"{after:4.0f} after {args.big} refused 20 MB Prepares -> {threaded:4.0f} after 4 threads"
            )


if __name__ == "__main__":
    main()
