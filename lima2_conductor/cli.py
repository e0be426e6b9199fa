"""``lima2-tango-conductor``: demo, interactive shell and GUI."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .launcher import CONDUCTOR, local_system


def _bar(done: int, total: int, width: int = 40) -> str:
    frac = done / total if total else 0.0
    full = int(frac * width)
    return "[" + "#" * full + "-" * (width - full) + f"] {done}/{total}"


def run_acquisition(
    conductor: Any,
    nb_frames: int,
    expo_time: float,
    latency_time: float = 0.0,
    params: dict[str, Any] | None = None,
    timeout: float | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Prepare and start an acquisition on a conductor proxy, wait for its end."""
    conductor.acq_nb_frames = nb_frames
    conductor.acq_expo_time = expo_time
    conductor.acq_latency_time = latency_time
    uid = conductor.Prepare(json.dumps(params or {}))
    t0 = time.monotonic()
    conductor.Start()
    deadline = t0 + (timeout if timeout is not None else 30 + 3 * nb_frames * (expo_time + latency_time))
    while conductor.running:
        if progress:
            print("\r" + _bar(conductor.nb_frames_xferred, nb_frames), end="", flush=True)
        if time.monotonic() > deadline:
            conductor.Stop()
            raise TimeoutError(f"acquisition {uid} did not end in time")
        time.sleep(0.05)
    wall = time.monotonic() - t0
    if progress:
        print("\r" + _bar(conductor.nb_frames_xferred, nb_frames))
    counters = json.loads(conductor.progress_counters)
    return {
        "uuid": uid,
        "run_state": conductor.run_state,
        "nb_frames_xferred": conductor.nb_frames_xferred,
        "nb_frames_processed": conductor.nb_frames_processed,
        "nb_frames_saved": conductor.nb_frames_saved,
        "wall_time_s": wall,
        "floor_s": nb_frames * (expo_time + latency_time),
        "per_receiver": counters.get("nb_frames_xferred", {}).get("per_receiver", {}),
        "errors": list(conductor.errors or []),
    }


def demo(args: argparse.Namespace) -> int:
    import tango

    workdir = Path(tempfile.mkdtemp(prefix="lima2-demo-"))
    data_dir = Path(args.saving_dir) if args.saving_dir else workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    print(
        f"Starting NosqlTangoDB, a simulated control, {args.receivers} receiver(s) and the conductor (logs in {workdir})"
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with local_system(args.receivers, conductor=True, workdir=workdir) as system:
            os.environ["TANGO_HOST"] = system.tango_host
            conductor = tango.DeviceProxy(CONDUCTOR)
            print(f"TANGO_HOST={system.tango_host}  conductor {CONDUCTOR}: {conductor.State()}")
            params = {
                "processing": {
                    "saving": {
                        "enabled": not args.no_saving,
                        "base_path": str(data_dir),
                        "file_exists_policy": "overwrite",
                    }
                }
            }
            result = run_acquisition(conductor, args.nb_frames, args.expo_time, params=params)
            print(f"Run {result['uuid']}: {result['run_state']}")
            print(
                f"  frames transferred {result['nb_frames_xferred']}, processed {result['nb_frames_processed']}, saved {result['nb_frames_saved']}"
            )
            print(
                f"  wall time {result['wall_time_s']:.3f} s for a floor of {result['floor_s']:.3f} s (+{result['wall_time_s'] - result['floor_s']:.3f} s)"
            )
            for name, count in result["per_receiver"].items():
                print(f"  {name}: {count} frames")
            if not args.no_saving:
                master = json.loads(conductor.master_files).get("frame", ["", ""])
                print(
                    f"  files in {data_dir}: {len(list(data_dir.glob('*.h5')))}, master file {master[0]} ({master[1]})"
                )
                if not args.saving_dir and not args.keep:
                    print("  (removed at exit: use --saving-dir DIR to keep them)")
            for err in result["errors"]:
                print(f"  error: {err}")
            if args.keep:
                print(f"Everything keeps running: export TANGO_HOST={system.tango_host}  (Ctrl+C to stop)")
                while True:
                    time.sleep(1)
            ok = result["run_state"] == "DONE"
    except KeyboardInterrupt:
        print("\nInterrupted: stopping every process")
        ok = False
    finally:
        if not args.keep and not args.saving_dir:
            shutil.rmtree(workdir, ignore_errors=True)
    print("All processes stopped.")
    return 0 if ok else 1


def namespaces(conductor: Any) -> dict[str, Any]:
    """The shell's ``acquisition``, ``detector`` and ``pipeline`` helpers on a proxy."""
    from types import SimpleNamespace

    from .core.devencoded import decode_frame, decode_rows
    from .core.reduced_data import STATS_DTYPE

    def prepare(params: dict[str, Any] | None = None) -> str:
        return str(conductor.Prepare(json.dumps(params or {})))

    acquisition = SimpleNamespace(
        prepare=prepare,
        start=conductor.Start,
        trigger=conductor.Trigger,
        stop=conductor.Stop,
        close=conductor.Close,
        reset=conductor.Reset,
        state=lambda: (conductor.State(), conductor.run_state),
        status=conductor.Status,
        progress=lambda: json.loads(conductor.progress_counters),
        errors=lambda: list(conductor.errors or []),
    )
    detector = SimpleNamespace(
        info=lambda: json.loads(conductor.det_info),
        status=lambda: json.loads(conductor.det_status),
        capabilities=lambda: json.loads(conductor.det_capabilities),
    )
    pipeline = SimpleNamespace(
        progress=lambda: conductor.nb_frames_processed,
        lookup=lambda frame_idx=-1: json.loads(conductor.Lookup(frame_idx)),
        frame=lambda frame_idx=-1, source="frame": decode_frame(conductor.GetFrame([[frame_idx], [source]]))[0],
        channels=lambda: json.loads(conductor.reduced_data_channels),
        reduced_data=lambda name="roi_stats", channel=0, from_frame=0, max_rows=0: decode_rows(
            conductor.GetReducedData([[channel, from_frame, max_rows], [name]]), STATS_DTYPE
        ),
        master_files=lambda: json.loads(conductor.master_files),
    )
    return {"acquisition": acquisition, "detector": detector, "pipeline": pipeline}


def shell(args: argparse.Namespace) -> int:
    import tango

    conductor = tango.DeviceProxy(args.device)
    namespace = {
        "conductor": conductor,
        "tango": tango,
        "run_acquisition": lambda nb_frames, expo_time, **kw: run_acquisition(conductor, nb_frames, expo_time, **kw),
        **namespaces(conductor),
    }
    banner = f"Lima2 conductor {args.device}: `conductor`, `acquisition`, `detector`, `pipeline`, run_acquisition(nb_frames, expo_time)"
    try:
        import itango  # noqa: F401 - the Tango profile
        from IPython import start_ipython

        print(banner)
        start_ipython(argv=["--profile=tango", "--no-banner"], user_ns=namespace)
    except ImportError:
        import code

        code.interact(banner=banner, local=namespace)
    return 0


GUI_ATTRIBUTES = (
    "State",
    "Status",
    "run_state",
    "acq_nb_frames",
    "acq_expo_time",
    "acq_latency_time",
    "acq_trigger_mode",
    "saving_enabled",
    "saving_directory",
    "saving_prefix",
    "nb_frames_acquired",
    "nb_frames_xferred",
    "nb_frames_processed",
    "nb_frames_saved",
    "frame_rate",
    "last_error",
    "last_image",
)


def gui(args: argparse.Namespace) -> int:
    """A Taurus form of the conductor's main attributes (needs the ``gui`` extra)."""
    exe = shutil.which("taurus")
    if exe is None:
        print("The GUI needs Taurus: pip install 'lima2-tango-conductor[gui]'", file=sys.stderr)
        return 2
    os.execv(exe, [exe, "form", *(f"{args.device}/{a}" for a in GUI_ATTRIBUTES)])
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lima2-tango-conductor", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="run the whole simulated system and one acquisition")
    d.add_argument("--receivers", type=int, default=2)
    d.add_argument("--nb-frames", type=int, default=120)
    d.add_argument("--expo-time", type=float, default=0.02, help="seconds")
    d.add_argument("--saving-dir", help="keep the saved files here")
    d.add_argument("--no-saving", action="store_true")
    d.add_argument("--keep", action="store_true", help="leave everything running for Jive, itango and Taurus")
    d.set_defaults(func=demo)
    for name, fn in (("shell", shell), ("gui", gui)):
        p = sub.add_parser(name)
        p.add_argument("device", nargs="?", default=CONDUCTOR)
        p.set_defaults(func=fn)
    args = parser.parse_args(argv)
    if getattr(args, "receivers", 1) < 1:
        parser.error("--receivers must be at least 1")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
