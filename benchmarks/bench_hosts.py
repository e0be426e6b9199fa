"""Figures of the conductor across simulated hosts (network namespaces, as root).

- the same 120 x 20 ms saving acquisition on one host and on three (database, control,
  conductor and client on one, each receiver on its own): overhead ratio;
- time from a receiver host's link cut to the run's FAULT (six hosts);
- longest progress stall (between two ``nb_frames_xferred`` change events while frames
  come) with a multi-homed receiver host whose first published address leads nowhere.

Run (root): ``python benchmarks/bench_hosts.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lima2_conductor.cli.launcher import Layout, wait_for  # noqa: E402
from tests.hosts.cluster import HostSystem  # noqa: E402
from tests.hosts.netns import Network, unavailable  # noqa: E402
from tests.hosts.test_multihomed import longest_stall  # noqa: E402
from tests.hosts.test_run import saving_params  # noqa: E402

LAYOUT = Layout(2, "id00", sensor=(512, 512))
NB, EXPO = 120, 0.02
ONE_HOST = {role: "host" for role in ("db", "control", "rcv1", "rcv2", "conductor", "client")}
THREE_HOSTS = {"db": "main", "control": "main", "conductor": "main", "client": "main", "rcv1": "rcv1", "rcv2": "rcv2"}


def system(base: Path, name: str, **kw: object) -> HostSystem:
    return HostSystem(Network(base / name / "run"), LAYOUT, base / name / "shared", **kw)  # type: ignore[arg-type]


def acquisition(h: HostSystem, data: Path, nb: int = NB) -> float:
    """Prepare, Start and the end of one saving run (client side, seconds)."""
    h.reset()
    data.mkdir(parents=True)
    t0 = time.monotonic()
    h.c(f"c.Prepare({saving_params(data, nb, EXPO)!r})")
    h.c("c.Start()")
    wait_for(lambda: h.c("c.run_state") in ("DONE", "FAULT"), 60, "end of run", interval=0.01)
    took = time.monotonic() - t0
    assert h.c("c.run_state") == "DONE", h.c("c.Status()")
    return took


def runs(h: HostSystem, repeat: int) -> list[float]:
    acquisition(h, h.data / "warm-up")
    return [acquisition(h, h.data / f"run{k}") for k in range(repeat)]


def cut_to_fault(h: HostSystem, repeat: int) -> list[float]:
    out = []
    for k in range(repeat):
        h.reset()
        data = h.data / f"cut{k}"
        data.mkdir()
        h.c(f"c.Prepare({saving_params(data, 200, EXPO)!r})")
        h.c("c.Start()")
        wait_for(lambda: h.c("c.nb_frames_xferred") >= 60, 30, "60 frames")
        t_cut = time.monotonic()
        h.net.cut("rcv2")
        try:
            assert h.client is not None
            seen = h.client(f"wait_value({h.conductor!r}, 'run_state', ['FAULT', 'DONE'], 10)", timeout=20)
            out.append(seen["at"] - t_cut)
        finally:
            h.net.heal("rcv2")
        wait_for(lambda: "OFFLINE" not in json.loads(h.c("c.device_states")).values(), 30, "receiver back")
        wait_for(lambda: not h.c("c.running"), 30, "run over")
    return out


def stalls(h: HostSystem, repeat: int) -> list[tuple[float, float]]:
    """(longest stall, largest monitor period) of each run, in seconds."""
    assert h.client is not None
    h.client(f"subscribe({h.conductor!r}, 'nb_frames_xferred')")
    out = []
    for k in range(repeat):
        h.client("clear_events()")
        acquisition(h, h.data / f"stall{k}")
        events = h.client(f"events({h.conductor!r}, 'nb_frames_xferred')")
        out.append((longest_stall(events, NB), json.loads(h.c("c.GetInfo()"))["monitor"]["period_ms"] / 1000))
    return out


def ms(values: list[float]) -> str:
    return (
        f"median {1e3 * statistics.median(values):7.1f} ms (min {1e3 * min(values):6.1f}, max {1e3 * max(values):6.1f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    why = unavailable()
    if why:
        sys.exit(f"bench_hosts: {why}")
    base = Path(tempfile.mkdtemp(prefix="lima2-bench-hosts-"))
    try:
        measure(base, args.repeat)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def measure(base: Path, repeat: int) -> None:
    floor = NB * EXPO
    figures: dict[str, list[float]] = {}
    for name, placement in (("one host", ONE_HOST), ("three hosts", THREE_HOSTS)):
        h = system(base, name.replace(" ", "-"), placement=placement)
        try:
            h.start()
            figures[name] = runs(h, repeat)
        finally:
            h.close()
    one, three = statistics.median(figures["one host"]), statistics.median(figures["three hosts"])
    print(f"{NB} x {EXPO * 1e3:.0f} ms saving acquisition, Prepare to DONE (floor {floor:.1f} s):")
    for name, values in figures.items():
        print(f"  {name:12s} {ms(values)}  overhead {100 * (statistics.median(values) / floor - 1):5.1f} %")
    print(f"  three hosts / one host: {three / one:.3f}")

    h = system(base, "six-hosts")
    try:
        h.start()
        print(f"Receiver host cut mid-run -> run FAULT: {ms(cut_to_fault(h, repeat))}")
    finally:
        h.close()

    h = system(base, "multi-homed", multi_homed="rcv2")
    try:
        h.start()
        measured = stalls(h, repeat)
        worst = max(s for s, _ in measured)
        print(
            f"Multi-homed receiver host (first address unreachable): longest progress stall "
            f"{1e3 * worst:.0f} ms over {repeat} runs (poll period {1e3 * measured[-1][1]:.0f} ms at rest)"
        )
    finally:
        h.close()


if __name__ == "__main__":
    main()
