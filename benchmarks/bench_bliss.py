"""Bliss scans on the conductor: per-point cost next to a ``simulation_diode``.

- ``loopscan(100, 0.005, det)`` next to ``loopscan(100, 0.005, diode)``: time per point
  and the detector's overhead per point (target: at most 5 ms more than the diode);
  where a point's time goes (the Trigger call, the wait for the point's frame);
- a 1,000-point ``timescan(0.005)`` with ROI counters;
- one line per processing plugin (``det.proc_plugin``): the per-point cost of
  ``loopscan(N, 0.005, det)`` with the plugin's default counters (and one ROI), the slope
  between N = 50 and 150, next to the diode's, and what the scan costs once.

Needs the ``bliss`` extra (``.venv-bliss``, see ``.ci/bliss``); starts NosqlTangoDB, the
simulators, the conductor and Beacon on free loopback ports, stops them by PID.
Run: ``.venv-bliss/bin/python benchmarks/bench_bliss.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.bliss import standins  # noqa: E402 - stand-ins first, then Bliss

standins.install()

from lima2_conductor.cli.launcher import Layout, running_db  # noqa: E402
from tests.bliss.beacon import running_beacon  # noqa: E402

LAYOUT = Layout(2, "id00", sensor=(256, 256))
TARGET_MS = 5.0


def timed_points(scan_fn: Any, npoints: int, attempts: int = 3) -> float:
    """Seconds per point of one scan; a scan failed by the simulated system is reported
    and run again (the next scan resets the failed run by itself)."""
    for attempt in range(attempts):
        t0 = time.perf_counter()
        try:
            scan_fn()
        except Exception as exc:  # noqa: BLE001 - reported, then retried
            if attempt == attempts - 1:
                raise
            print(f"  (a scan failed, run again: {str(exc).splitlines()[0]} / {str(exc).splitlines()[-1][:160]})")
            continue
        return (time.perf_counter() - t0) / npoints
    raise AssertionError("unreachable")


def instrument(master_cls: Any) -> dict[str, list[float]]:
    """Record how long the master's trigger and wait_ready take (per point)."""
    spent: dict[str, list[float]] = defaultdict(list)
    for name in ("trigger", "wait_ready"):
        original = getattr(master_cls, name)

        def wrapper(self: Any, _original: Any = original, _name: str = name) -> Any:
            t0 = time.perf_counter()
            try:
                return _original(self)
            finally:
                spent[_name].append(time.perf_counter() - t0)

        setattr(master_cls, name, wrapper)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-bliss-"))
    shutil.copytree(ROOT / "tests" / "bliss" / "beacon_config", work / "config")
    try:
        with running_db([LAYOUT], work / "tango") as system, running_beacon(work / "config", work) as beacon:
            os.environ["TANGO_HOST"] = system.tango_host
            os.environ["BEACON_HOST"] = beacon.host
            system.start_simulators(LAYOUT)
            system.start_conductor(LAYOUT)
            run(work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work: Path, repeat: int) -> None:
    from bliss.common.scans import loopscan, timescan
    from bliss.config.static import get_config
    from bliss.controllers.lima.roi import ArcRoi, Roi

    from lima2_conductor.bliss.acquisition_master import ConductorAcquisitionMaster

    config = get_config()
    session = config.get("lima2_session")
    session.setup()
    session.scan_saving.base_path = str(work / "data")
    session.scan_saving.writer = "null"
    det, diode = config.get("det"), config.get("diode")
    det.acquisition.reset()
    det.processing.roi_profiles.clear()
    det.processing.roi_stats.rois = [Roi(10, 20, 60, 40, name="r1"), ArcRoi(128, 128, 10, 60, 0, 90, name="a1")]

    loopscan(10, 0.005, diode)
    loopscan(10, 0.005, det)
    spent = instrument(ConductorAcquisitionMaster)
    diode_pp, det_pp = [], []
    for _ in range(repeat):
        diode_pp.append(timed_points(lambda: loopscan(100, 0.005, diode), 100))
        det_pp.append(timed_points(lambda: loopscan(100, 0.005, det), 100))
    d, m = statistics.median(diode_pp), statistics.median(det_pp)
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"change events from the conductor: {', '.join(sorted(det.client.watcher.subscribed)) or 'none'}")
    print(f"loopscan(100, 0.005, diode): {d * 1e3:6.1f} ms per point (median of {repeat})")
    print(f"loopscan(100, 0.005, det):   {m * 1e3:6.1f} ms per point (median of {repeat}, ROI counters)")
    over = (m - d) * 1e3
    verdict = "meets" if over <= TARGET_MS else "misses"
    print(f"det overhead over the diode: {over:+6.1f} ms per point ({verdict} the {TARGET_MS:.0f} ms target)")
    for name, values in spent.items():
        print(
            f"  {name:10s} median {statistics.median(values) * 1e3:6.1f} ms, "
            f"p90 {sorted(values)[int(0.9 * len(values))] * 1e3:6.1f} ms"
        )

    t0 = time.perf_counter()
    scan = timescan(0.005, det.counters.r1_sum, det.counters.r1_avg, det.counters.a1_max, npoints=1000)
    elapsed = time.perf_counter() - t0
    got = len(scan.streams["det:roi_statistics:r1_sum"][:])
    print(
        f"timescan(0.005, 3 ROI counters, npoints=1000): {elapsed:6.2f} s, "
        f"{elapsed:.2f} ms per point (s per 1,000), {got} values, run {det.client.run_state()}"
    )
    per_plugin(det, diode, repeat)


def per_plugin(det: Any, diode: Any, repeat: int) -> None:
    """Per-point cost of a step scan with each plugin's default counters (images,
    ``nb_peaks``/``fill_factor``, one ROI's statistics) next to the diode's: the slope
    between a 50- and a 150-point ``loopscan``, so that what a scan costs once (Prepare,
    sealing each of its blissdata streams at the end, ~20-60 ms a stream) is apart."""
    from bliss.common.scans import loopscan
    from bliss.controllers.lima.roi import Roi

    def slope(*counters: Any) -> tuple[float, float]:
        short = statistics.median(timed_points(lambda: loopscan(50, 0.005, *counters), 1) for _ in range(repeat))
        long = statistics.median(timed_points(lambda: loopscan(150, 0.005, *counters), 1) for _ in range(repeat))
        per_point = (long - short) / 100
        return per_point, short - 50 * per_point

    loopscan(10, 0.005, diode)
    diode_pp, diode_once = slope(diode)
    print(
        f"diode   loopscan(50 and 150, 0.005): {diode_pp * 1e3:6.1f} ms per point, {diode_once * 1e3:5.0f} ms per scan"
    )
    for name in ("legacy", "smx", "xpcs", "fai", "failing"):
        det.proc_plugin = name
        if name != "failing":
            det.processing.roi_profiles.clear()
            det.processing.roi_stats.rois = [Roi(10, 20, 60, 40, name="r1")]
        loopscan(10, 0.005, det)
        pp, once = slope(det)
        over = (pp - diode_pp) * 1e3
        verdict = "meets" if over <= TARGET_MS else "misses"
        counters = [c.name for c in det.counter_groups.default]
        print(
            f"plugin {name:8s} {pp * 1e3:6.1f} ms per point, {over:+5.1f} ms over the diode ({verdict} the "
            f"{TARGET_MS:.0f} ms target), {once * 1e3:5.0f} ms per scan; {len(counters)} counters: {', '.join(counters)}"
        )
    det.proc_plugin = "legacy"


if __name__ == "__main__":
    main()
