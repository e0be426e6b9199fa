"""Soak: N Prepare/Start/end cycles with saving through the conductor (RELIABILITY 25).

Prints, per block of 100 cycles: the mean cycle time, the conductor's RSS, thread count
and open file descriptors (from ``/proc``), and failures. With ``--faults`` one cycle in
ten injects a random fault (receiver FAULT mid-run, a failing Prepare, a Stop mid-run),
recovered with ``Reset`` as an operator would. The figures should stay flat after warm-up.

Run: ``python benchmarks/soak.py [--cycles 500] [--faults]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

import tango

from lima2_conductor.cli.launcher import Layout, running_db, wait_for

LAYOUT = Layout(2, "id00", sensor=(128, 128))


def proc_stats(pid: int) -> tuple[float, int, int]:
    """RSS (MB), threads and open fds of a process."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in status if ":" in line)
    rss = int(fields["VmRSS"].split()[0]) / 1024
    threads = int(fields["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, threads, fds


def cycle(c: tango.DeviceProxy, data: Path, k: int, faults: bool, rng: random.Random) -> str:
    """One acquisition; returns "" or what went wrong."""
    fault = rng.choice(["receiver", "prepare", "stop"]) if faults and k % 10 == 9 else ""
    rcv = tango.DeviceProxy(LAYOUT.receiver(rng.randrange(LAYOUT.nb_receivers)))
    params = {
        "processing": {
            "saving": {"enabled": True, "base_path": str(data), "filename_prefix": f"c{k}", "nb_frames_per_file": 10}
        }
    }
    if fault == "prepare":
        rcv.sim_fail_prepare = True
        try:
            c.Prepare(json.dumps(params))
            return "a failing Prepare succeeded"
        except tango.DevFailed:
            c.Reset()
            return ""
    if fault == "receiver":
        rcv.sim_fail_at_frame = 5
    c.Prepare(json.dumps(params))
    c.Start()
    if fault == "stop":
        c.Stop()
    wait_for(lambda: c.run_state in ("DONE", "STOPPED", "FAULT"), 30, f"end of cycle {k}")
    state = c.run_state
    if fault == "receiver":
        rcv.sim_fail_at_frame = -1
        c.Reset()
        return "" if state == "FAULT" else f"cycle {k}: receiver fault not seen ({state})"
    expected = "STOPPED" if fault == "stop" else "DONE"
    if state not in (expected, "DONE"):
        return f"cycle {k}: {state}: {c.Status()}"
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=500)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--faults", action="store_true", help="inject a random fault every tenth cycle")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="lima2-soak-") as tmp, running_db([LAYOUT], Path(tmp)) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        system.start_simulators(LAYOUT)
        pid = system.start_conductor(LAYOUT).pid
        c = tango.DeviceProxy(LAYOUT.conductor)
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        c.acq_nb_frames, c.acq_expo_time = args.frames, 0.001
        data = Path(tmp) / "data"
        data.mkdir()
        print(f"{args.cycles} cycles of {args.frames} frames with saving{' and faults' if args.faults else ''}")
        print(f"{'cycles':>8} {'ms/cycle':>9} {'RSS MB':>8} {'threads':>8} {'fds':>5} {'failures':>9}")
        failures: list[str] = []
        first: tuple[float, int, int] | None = None
        t0 = time.perf_counter()
        for k in range(args.cycles):
            problem = cycle(c, data, k, args.faults, rng)
            if problem:
                failures.append(problem)
            for f in data.iterdir():  # keep the disk small: files of finished cycles go
                f.unlink()
            if (k + 1) % 100 == 0 or k + 1 == args.cycles:
                rss, threads, fds = proc_stats(pid)
                first = first or (rss, threads, fds)
                mean = (time.perf_counter() - t0) / ((k % 100) + 1) * 1000
                print(f"{k + 1:>8} {mean:>9.1f} {rss:>8.1f} {threads:>8} {fds:>5} {len(failures):>9}", flush=True)
                t0 = time.perf_counter()
        rss, threads, fds = proc_stats(pid)
        assert first is not None
        print(f"after warm-up: RSS {rss - first[0]:+.1f} MB, threads {threads - first[1]:+d}, fds {fds - first[2]:+d}")
        for f in failures[:10]:
            print("failure:", f)


if __name__ == "__main__":
    main()
