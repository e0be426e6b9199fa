"""Careless clients: threads issuing Prepare/Start/Stop/Reset/Close at random against one
conductor, each through its own ``DeviceProxy``, while a watcher samples the run state.

The load of the stress test (``tests/integration/test_stress.py``) and of
``benchmarks/bench_stress.py``. A client thinks a random moment between commands (up to
``THINK_S``): without it, every Prepare would be cancelled by another client's Stop before
it ends, and runs, with their ends, starts and stops, would never be tried.
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import tango

COMMANDS = ("Prepare", "Start", "Stop", "Reset", "Close")
WEIGHTS = (3, 3, 2, 1, 1)  # more Prepares and Starts: more runs to interrupt
NB_FRAMES = (0, 5, 50, 300)  # 0 is an endless run, ended only by a Stop
THINK_S = 0.15
ALLOWED = frozenset({"OPERATION_NOT_ALLOWED"})
"""Refusals a careless client must expect: the command conflicts with another client's."""
TRANSIENT = frozenset({"PREPARING", "STARTING", "STOPPING", "CLOSING", "RESETTING", "WAITING_FOR_PROC"})
"""Run states that must end by themselves within a deadline."""


@dataclass
class Report:
    """What the clients did and what the watcher saw."""

    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)  # "command: reason: description"
    longest: dict[str, float] = field(default_factory=dict)  # transient state -> longest dwell (s)
    overdue: list[str] = field(default_factory=list)  # transient states held past the deadline
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, command: str, outcome: str, detail: str = "") -> None:
        with self.lock:
            self.counts[command, outcome] += 1
            if outcome != "ok" and outcome not in ALLOWED:
                self.unexpected.append(f"{command}: {outcome}: {detail}")

    def table(self) -> str:
        """Counts per command and outcome, one line per command."""
        outcomes = sorted({o for _, o in self.counts})
        lines = [f"{'command':<8} " + " ".join(f"{o:>21}" for o in outcomes)]
        for cmd in COMMANDS:
            lines.append(f"{cmd:<8} " + " ".join(f"{self.counts.get((cmd, o), 0):>21}" for o in outcomes))
        lines.append(
            "longest transient states: " + ", ".join(f"{s} {t:.2f} s" for s, t in sorted(self.longest.items()))
        )
        return "\n".join(lines)


def client(device: str, seed: int, stop: threading.Event, report: Report, think_s: float = THINK_S) -> None:
    """Issue random commands until ``stop`` is set."""
    proxy = tango.DeviceProxy(device)
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(0, think_s)):
        command = rng.choices(COMMANDS, WEIGHTS)[0]
        try:
            if command == "Prepare":
                proxy.Prepare(json.dumps({"control": {"acq": {"nb_frames": rng.choice(NB_FRAMES)}}}))
            else:
                proxy.command_inout(command)
            report.add(command, "ok")
        except tango.DevFailed as exc:
            report.add(command, exc.args[0].reason, exc.args[0].desc.strip())


def watch(device: str, stop: threading.Event, report: Report, deadline_s: float, period_s: float = 0.02) -> None:
    """Sample ``run_state`` (with the run's uuid) until ``stop``; note how long each
    transient state lasted and which ones outlived ``deadline_s``."""
    proxy = tango.DeviceProxy(device)
    current: tuple[str, str] | None = None
    since = time.monotonic()

    def close(now: float) -> None:
        if current is not None and current[0] in TRANSIENT:
            held = now - since
            with report.lock:
                report.longest[current[0]] = max(report.longest.get(current[0], 0.0), held)
                if held > deadline_s:
                    report.overdue.append(f"{current[0]} held {held:.1f} s (run {current[1]})")

    while not stop.wait(period_s):
        try:
            values = proxy.read_attributes(["run_state", "acq_uuid"])
            seen = (str(values[0].value), str(values[1].value))
        except tango.DevFailed:
            continue
        now = time.monotonic()
        if seen != current:
            close(now)
            current, since = seen, now
    close(time.monotonic())


def hang(devices: list[str], seed: int, stop: threading.Event, hang_s: float) -> None:
    """Now and then, one of ``devices`` (simulators) blocks its whole server for ``hang_s``
    at its next command: commands and their rollbacks then take long, as on a loaded host."""
    proxies = [tango.DeviceProxy(d) for d in devices]
    rng = random.Random(seed)
    while not stop.wait(rng.uniform(0, 4 * hang_s)):
        try:
            rng.choice(proxies).sim_hang = hang_s
        except tango.DevFailed:
            pass  # hung already: the next one


def run_clients(
    device: str,
    nb_clients: int,
    seconds: float,
    seed: int,
    deadline_s: float,
    think_s: float = THINK_S,
    hangs: list[str] | None = None,
    hang_s: float = 0.2,
) -> Report:
    """``nb_clients`` careless clients for ``seconds``, watched (and with ``hangs``, those
    simulators hanging now and then); returns once all have stopped."""
    report = Report()
    stop = threading.Event()
    rng = random.Random(seed)
    threads = [
        threading.Thread(target=client, args=(device, rng.randrange(2**32), stop, report, think_s), name=f"client{k}")
        for k in range(nb_clients)
    ]
    if hangs:
        threads.append(threading.Thread(target=hang, args=(hangs, rng.randrange(2**32), stop, hang_s), name="hang"))
    watcher = threading.Thread(target=watch, args=(device, stop, report, deadline_s), name="watcher")
    for t in [watcher, *threads]:
        t.start()
    try:
        stop.wait(seconds)
    finally:
        stop.set()
        for t in [*threads, watcher]:
            t.join()
    return report


def device_states(names: list[str]) -> dict[str, str]:
    """The Lima2 devices' own ``acq_state``, by name (as the conductor's ``device_states``)."""
    from ..core.lima2 import DeviceState

    return {name: DeviceState(int(tango.DeviceProxy(name).acq_state)).name for name in names}


__all__: list[Any] = ["Report", "device_states", "run_clients"]
