"""Concurrent reads during a fast run: every read must return a value.

Clients in ``--threads`` threads read the progress attributes of the conductor (each
thread with its own proxy) while an endless 1 ms run goes on for ``--seconds``. Prints the
reads per second, the failed reads (by reason) and the change events received. A failed
read is a defect whatever the load: the figure to watch is ``failed``.

Run: ``python benchmarks/stress_reads.py [--threads 8] [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import threading
import time
from pathlib import Path

import tango

from lima2_conductor.cli.launcher import Layout, running_db, wait_for

LAYOUT = Layout(2, "id00", sensor=(64, 64))
NAMES = (
    "nb_frames_ready",
    "nb_frames_processed",
    "nb_frames_xferred",
    "nb_frames_acquired",
    "run_state",
    "State",
    "Status",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lima2-stress-") as tmp, running_db([LAYOUT], Path(tmp)) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        system.start_simulators(LAYOUT)
        system.start_conductor(LAYOUT)
        c = tango.DeviceProxy(LAYOUT.conductor)
        wait_for(lambda: c.State() == tango.DevState.ON, 20, "conductor")
        c.acq_nb_frames, c.acq_expo_time = 0, 0.001
        events = [0]
        ids = [
            c.subscribe_event(n, tango.EventType.CHANGE_EVENT, lambda e: events.__setitem__(0, events[0] + 1))
            for n in NAMES
        ]
        c.Prepare("")
        c.Start()
        stop = time.monotonic() + args.seconds
        reads = [0] * args.threads
        failed: collections.Counter[str] = collections.Counter()

        def reader(k: int) -> None:
            proxy = tango.DeviceProxy(LAYOUT.conductor)
            while time.monotonic() < stop:
                for name in NAMES:
                    try:
                        if proxy.read_attribute(name).value is None:
                            failed["None"] += 1
                        reads[k] += 1
                    except tango.DevFailed as exc:
                        failed[f"{name}: {exc.args[0].reason}"] += 1

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        c.Stop()
        for i in ids:
            c.unsubscribe_event(i)
        total = sum(reads)
        print(
            f"{args.threads} threads, {args.seconds:.0f} s: {total} reads ({total / args.seconds:.0f}/s), "
            f"failed {sum(failed.values())} {dict(failed)}, {events[0]} events received"
        )


if __name__ == "__main__":
    main()
