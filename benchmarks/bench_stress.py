"""Careless clients against a local system: N clients issue Prepare/Start/Stop/Reset/Close
at random for a while (:mod:`lima2_conductor.cli.stress`); prints the counts per command and
outcome, the longest transient run states, and what should never happen (an error other
than a refusal, a transient state held past its deadline, conductor and devices disagreeing
at the end).

Run: ``python benchmarks/bench_stress.py [--seconds 60] [--clients 2] [--seed N]``.
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
from lima2_conductor.cli.stress import THINK_S, device_states, run_clients

LAYOUT = Layout(2, "id00", sensor=(128, 128))
DEADLINE_S = 6.0  # twice the conductor's default device_timeout_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="replay a run (default: random, printed)")
    parser.add_argument("--think", type=float, default=THINK_S, help="longest pause between a client's commands (s)")
    parser.add_argument("--hang", type=float, default=0.2, help="receivers hang this long now and then (s; 0: never)")
    args = parser.parse_args()
    seed = random.randrange(2**32) if args.seed is None else args.seed
    with tempfile.TemporaryDirectory(prefix="lima2-stress-") as tmp, running_db([LAYOUT], Path(tmp)) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        system.start_simulators(LAYOUT)
        system.start_conductor(LAYOUT)
        c = tango.DeviceProxy(LAYOUT.conductor)
        wait_for(lambda: c.State() == tango.DevState.ON, 30, "conductor")
        print(f"{args.clients} clients for {args.seconds:.0f} s, seed {seed}, receivers hanging {args.hang} s")
        t0 = time.monotonic()
        hangs = LAYOUT.receivers if args.hang > 0 else None
        report = run_clients(
            LAYOUT.conductor, args.clients, args.seconds, seed, DEADLINE_S, args.think, hangs, args.hang
        )
        elapsed = time.monotonic() - t0
        total = sum(report.counts.values())
        print(report.table())
        print(f"{total} commands in {elapsed:.1f} s ({total / elapsed:.0f}/s)")
        c.Stop()
        wait_for(lambda: not c.running, 2 * DEADLINE_S, "the last run stopped")
        c.Reset()
        names = [LAYOUT.control, *LAYOUT.receivers]
        try:
            wait_for(lambda: json.loads(c.device_states) == device_states(names), 5, "conductor and devices agree")
            agree = "yes"
        except TimeoutError:
            agree = f"NO: conductor {c.device_states}, devices {device_states(names)}"
        problems = report.unexpected + report.overdue
        print(f"conductor and devices agree after Stop and Reset: {agree}")
        print(f"unexpected errors: {len(report.unexpected)}, transient states overdue: {len(report.overdue)}")
        for line in problems[:20]:
            print("  " + line)
        return 1 if problems or agree != "yes" else 0


if __name__ == "__main__":
    raise SystemExit(main())
