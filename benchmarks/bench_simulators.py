"""Sustained frame rate of the simulators per processing class: 512x512 uint16, ROI
statistics (where the class has them), 2 receivers, saving off then on (every channel).

The detector is asked for frames far faster than the receivers can take them
(1 us exposure), so the time to the end is the receivers' processing time.
Run: ``python benchmarks/bench_simulators.py [--frames N] [--classes Legacy,Smx,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid

import tango

from lima2_conductor.cli.launcher import CONTROL, local_system, receiver_name, wait_for
from lima2_conductor.core import lima2
from lima2_conductor.core.params import defaults_from_schema


def run_once(nb_frames: int, saving: bool, data_dir: str, class_name: str = lima2.LEGACY.class_name) -> float:
    db = tango.Database()
    acq = defaults_from_schema(
        json.loads(db.get_class_attribute_property("LimaSimulatorControl", "acq_params")["acq_params"]["schema"][0])
    )
    acq["acq"].update(nb_frames=nb_frames, expo_time=1, latency_time=0)
    acq["det"]["generator"]["pixel_type"] = "gray16"
    proc = defaults_from_schema(
        json.loads(db.get_class_attribute_property(class_name, "proc_params")["proc_params"]["schema"][0])
    )
    if "statistics" in proc:
        proc["statistics"].update(
            enabled=True, rect_rois=[{"topleft": {"x": 100, "y": 100}, "dimensions": {"x": 300, "y": 200}}]
        )
    spec = lima2.pipeline(class_name)
    for k, channel in enumerate(spec.saving_channels):
        proc[channel].update(
            enabled=saving,
            base_path=data_dir,
            filename_prefix=f"bench{k}",
            file_exists_policy="overwrite",
            nb_frames_per_file=500,
        )
    ctl = tango.DeviceProxy(CONTROL)
    rcvs = [tango.DeviceProxy(receiver_name(i)) for i in range(2)]
    uid = str(uuid.uuid1())
    ctl.acq_params = json.dumps(acq)
    for i, r in enumerate(rcvs):
        r.acq_params = json.dumps(acq)
        r.proc_params = json.dumps(spec.finalise(proc, i, len(rcvs), False))
    for d in (ctl, *rcvs):
        d.Prepare(uid)
    t0 = time.perf_counter()
    for d in (*rcvs, ctl):
        d.Start()
    wait_for(lambda: all(r.acq_state == 0 for r in rcvs), 600, "end", interval=0.01)
    elapsed = time.perf_counter() - t0
    assert sum(r.nb_frames_xferred for r in rcvs) == nb_frames
    for r in rcvs:
        r.erasePipeline(uid)
    return nb_frames / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--classes", default=",".join(lima2.PIPELINES), help="processing classes, comma separated")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local_system(2, workdir=os.path.join(tmp, "sys")) as system:
        os.environ["TANGO_HOST"] = system.tango_host
        run_once(200, False, tmp)  # warm-up
        for class_name in args.classes.split(","):
            for saving in (False, True):
                rate = run_once(args.frames, saving, tmp, class_name)
                print(
                    f"{class_name:22s} 2 receivers, 512x512 uint16, saving {'on ' if saving else 'off'}: "
                    f"{rate:8.0f} frames/s  ({rate / 1000:.2f} x the 1,000 frames/s target)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
