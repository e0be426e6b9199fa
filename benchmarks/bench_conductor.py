"""Conductor figures, printed next to the lima2-client 4.3 conductor (the peer) where
the same measure applies to it.

- Prepare+Start latency with 1, 2, 4 and 8 receivers;
- progress read latency on the conductor next to a plain attribute read on a simulator;
- end-to-end overhead of a 120 x 20 ms acquisition over its 2.4 s floor;
- ``GetFrame`` of one frame and of the newest (``-1``) next to a direct ``getFrame``;
- time to notice a receiver killed mid-run.

Run: ``python benchmarks/bench_conductor.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import statistics
import tempfile
import time
from typing import Any

import tango

from lima2_conductor.cli.launcher import Layout, LocalSystem, running_db, wait_for

LAYOUTS = {n: Layout(n, f"id{n:02d}") for n in (1, 2, 4, 8)}


def ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1e3:7.1f} ms (min {min(values) * 1e3:6.1f})"


def ours_prepare_start(layout: Layout, repeat: int) -> list[float]:
    c = tango.DeviceProxy(layout.conductor)
    c.acq_nb_frames, c.acq_expo_time = 1, 0.001
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c.Prepare("")
        c.Start()
        out.append(time.perf_counter() - t0)
        wait_for(lambda: not c.running, 10, "end")
    return out


def settled(layout: Layout) -> None:
    """Wait until the conductor's post-Prepare clean-up is over (each receiver holds only
    the conductor's last pipeline) before the peer uses the same devices: that clean-up
    erases every other pipeline, the peer's too."""
    uid = tango.DeviceProxy(layout.conductor).acq_uuid
    receivers = [tango.DeviceProxy(r) for r in layout.receivers]
    wait_for(lambda: all(list(r.pipelines or []) == [uid] for r in receivers), 30, "the conductor's clean-up")


def peer_system(layout: Layout, topology: str = "round_robin") -> Any:
    from lima2.conductor.acquisition_system import AcquisitionSystem
    from lima2.conductor.tango.control import TangoControl
    from lima2.conductor.tango.receiver import TangoReceiver
    from lima2.conductor.topology import RoundRobin, SingleReceiver

    rcvs = [TangoReceiver(url=r, timeout_ms=5000) for r in layout.receivers]
    topo = (
        SingleReceiver()
        if layout.nb_receivers == 1
        else RoundRobin(num_receivers=layout.nb_receivers, ordering=list(range(layout.nb_receivers)))
    )
    return AcquisitionSystem(
        control=TangoControl(url=layout.control, timeout_ms=5000), receivers=rcvs, topology=topo, tango_timeout_s=5
    )


def peer_params(layout: Layout, nb_frames: int, expo_us: int) -> tuple[dict[str, Any], dict[str, Any]]:
    import jsonschema_default

    db = tango.Database()
    acq = jsonschema_default.create_from(
        json.loads(db.get_class_attribute_property("LimaSimulatorControl", "acq_params")["acq_params"]["schema"][0])
    )
    acq["acq"].update(nb_frames=nb_frames, expo_time=expo_us)
    proc = jsonschema_default.create_from(
        json.loads(db.get_class_attribute_property("LimaProcessingLegacy", "proc_params")["proc_params"]["schema"][0])
    )
    return acq, proc


PEER_MISSED: list[str] = []


async def peer_prepare_start(
    layout: Layout, repeat: int, nb_frames: int = 1, expo_us: int = 1000
) -> tuple[list[float], list[float]]:
    acqsys = peer_system(layout)
    acq, proc = peer_params(layout, nb_frames, expo_us)
    latencies, runs = [], []
    floor = nb_frames * expo_us * 1e-6
    with acqsys.attach():
        await asyncio.sleep(0.2)  # its pollers connect
        for _ in range(repeat):
            t0 = time.perf_counter()
            await acqsys.prepare(
                ctl_params=copy.deepcopy(acq),
                acq_params=copy.deepcopy(acq),
                proc_params=copy.deepcopy(proc),
                user_metadata={},
            )
            await acqsys.start()
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            while acqsys.acquisition.running() and time.perf_counter() - t1 < floor + 10:
                await asyncio.sleep(0.005)
            if acqsys.acquisition.running():  # its 50 ms state poll missed the whole run
                PEER_MISSED.append(f"{layout.nb_receivers} receiver(s)")
                await acqsys.reset()
                continue
            runs.append(time.perf_counter() - t1)
    return latencies, runs


def read_latency(name: str, attr: str, n: int = 300) -> list[float]:
    d = tango.DeviceProxy(name)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        d.read_attribute(attr)
        out.append(time.perf_counter() - t0)
    return out


def e2e(layout: Layout) -> dict[str, float]:
    """Prepare..DONE of 120 x 20 ms, with its breakdown (client side)."""
    c = tango.DeviceProxy(layout.conductor)
    c.acq_nb_frames, c.acq_expo_time = 120, 0.02
    t0 = time.perf_counter()
    c.Prepare("")
    t1 = time.perf_counter()
    c.Start()
    t2 = time.perf_counter()
    wait_for(lambda: c.nb_frames_acquired >= 1, 30, "first frame", interval=0.001)
    t3 = time.perf_counter()
    wait_for(lambda: c.nb_frames_acquired >= 120, 30, "last frame", interval=0.001)
    t4 = time.perf_counter()
    wait_for(lambda: c.run_state in ("DONE", "FAULT"), 30, "end", interval=0.001)
    t5 = time.perf_counter()
    return {
        "prepare": t1 - t0,
        "start": t2 - t1,
        "first frame": t3 - t2,
        "last frame to DONE": t5 - t4,
        "total": t5 - t0,
    }


def fan_out_delay(layout: Layout, delay: float, repeat: int) -> float:
    """Median Prepare time with every receiver's Prepare slowed by ``delay``."""
    c = tango.DeviceProxy(layout.conductor)
    c.set_timeout_millis(20_000)
    c.acq_nb_frames, c.acq_expo_time = 1, 0.001
    for r in layout.receivers:
        tango.DeviceProxy(r).sim_prepare_delay = delay
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        c.Prepare("")
        out.append(time.perf_counter() - t0)
    for r in layout.receivers:
        tango.DeviceProxy(r).sim_prepare_delay = 0.0
    return statistics.median(out)


def get_frame(layout: Layout, n: int = 100, frame_idx: int = 37) -> tuple[list[float], list[float]]:
    """GetFrame 512x512 through the conductor, and getFrame straight from the processing
    device (``frame_idx`` -1: the newest, from the device that has it)."""
    c = tango.DeviceProxy(layout.conductor)
    c.acq_nb_frames, c.acq_expo_time = 40, 0.001
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.run_state == "DONE", 30, "end")
    where = json.loads(c.Lookup(frame_idx))
    direct = tango.DeviceProxy(where["processing_device"])
    ours, plain = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        c.GetFrame([[frame_idx], ["frame"]])
        t1 = time.perf_counter()
        direct.command_inout(where["command"], frame_idx)
        t2 = time.perf_counter()
        ours.append(t1 - t0)
        plain.append(t2 - t1)
    return ours, plain


def kill_detection(system: LocalSystem, layout: Layout) -> float:
    c = tango.DeviceProxy(layout.conductor)
    c.acq_nb_frames, c.acq_expo_time = 0, 0.001
    c.Prepare("")
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 20, 10, "frames")
    proc = system.processes[layout.receiver_instance(layout.nb_receivers - 1)]
    t0 = time.perf_counter()
    proc.signal(signal.SIGKILL)
    wait_for(lambda: c.run_state == "FAULT", 10, "FAULT", interval=0.002)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp, running_db(list(LAYOUTS.values()), os.path.join(tmp, "sys")) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        print("Prepare+Start latency (client side, 1-frame acquisitions):")
        for n, layout in LAYOUTS.items():
            system.start_simulators(layout)
            system.start_conductor(layout)
            ours = ours_prepare_start(layout, args.repeat)
            settled(layout)
            peer, _ = loop.run_until_complete(peer_prepare_start(layout, args.repeat))
            print(
                f"  {n} receiver(s): conductor {ms(ours)} | lima2-client {ms(peer)} | ratio {statistics.median(peer) / statistics.median(ours):5.1f}x"
            )
            if n == 8:
                plain, slow = fan_out_delay(layout, 0.0, 3), fan_out_delay(layout, 0.5, 3)
                print(
                    f"  fan-out: 8 receivers whose Prepare each sleeps 0.5 s make Prepare {(slow - plain):.2f} s slower "
                    "(4 s if it were sequential)"
                )
            if n != 2:
                system.stop_layout(layout)
        two = LAYOUTS[2]
        ours_read = read_latency(two.conductor, "nb_frames_xferred")
        plain = read_latency(two.receiver(0), "nb_frames_xferred")
        print(f"Progress read: conductor nb_frames_xferred {ms(ours_read)} | simulator attribute {ms(plain)}")
        runs = [e2e(two) for _ in range(5)]
        settled(two)
        peer_start, peer_runs = loop.run_until_complete(peer_prepare_start(two, 5, nb_frames=120, expo_us=20_000))
        ours_total = statistics.median(r["total"] for r in runs) - 2.4
        peer_total = statistics.median(a + b for a, b in zip(peer_start, peer_runs, strict=False)) - 2.4
        print(
            f"120 x 20 ms, Prepare..DONE overhead over 2.4 s: conductor {ours_total * 1e3:.0f} ms | "
            f"lima2-client {peer_total * 1e3:.0f} ms | ratio {ours_total / peer_total:.2f} (target <= 0.5)"
        )
        print(
            "  conductor breakdown (medians): "
            + ", ".join(f"{k} {statistics.median(r[k] for r in runs) * 1e3:.0f} ms" for k in runs[0] if k != "total")
        )
        if PEER_MISSED:
            print(f"  lima2-client missed the end of {len(PEER_MISSED)} run(s) ({', '.join(PEER_MISSED)}): left out")
        ours_frame, direct_frame = get_frame(two)
        ratio = statistics.median(ours_frame) / statistics.median(direct_frame)
        print(
            f"GetFrame 512x512: conductor {ms(ours_frame)} | direct getFrame {ms(direct_frame)} | ratio {ratio:.2f} (target <= 1.7: one more Tango hop)"
        )
        ours_newest, direct_newest = get_frame(two, frame_idx=-1)
        ratio = statistics.median(ours_newest) / statistics.median(direct_newest)
        print(
            f"GetFrame(-1), 2 receivers: conductor {ms(ours_newest)} | direct getFrame(-1) {ms(direct_newest)} | ratio {ratio:.2f}"
        )
        print(
            f"Receiver SIGKILL mid-run -> run FAULT after {kill_detection(system, two) * 1e3:.0f} ms (target < 1000 ms)"
        )
    loop.close()


if __name__ == "__main__":
    main()
