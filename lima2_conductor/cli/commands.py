"""``lima2-tango-conductor``: demo, interactive shell, GUI and registration in a Tango database."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .acquire import run_acquisition
from .launcher import CONDUCTOR, local_system, receiver_name
from .shell import namespaces

__all__ = ["main", "namespaces", "run_acquisition"]


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _describe_error(exc: BaseException) -> str:
    """``REASON: description`` of a DevFailed, else the exception's text."""
    err = exc.args[0] if exc.args else None
    if hasattr(err, "reason") and hasattr(err, "desc"):
        return f"{err.reason}: {err.desc.strip()}"
    return f"{type(exc).__name__}: {exc}"


def _run_ok(result: dict[str, Any]) -> bool:
    """DONE, or STOPPED by Ctrl+C."""
    return result["run_state"] == "DONE" or (result["interrupted"] and result["run_state"] == "STOPPED")


def _print_summary(result: dict[str, Any], conductor: Any, args: argparse.Namespace, data_dir: Path) -> None:
    print(f"Run {result['uuid']}: {result['run_state']}" + (" (stopped by Ctrl+C)" if result["interrupted"] else ""))
    print(
        f"  frames transferred {result['nb_frames_xferred']}, processed {result['nb_frames_processed']}, saved {result['nb_frames_saved']}"
    )
    if result["run_state"] == "DONE":
        print(
            f"  wall time {result['wall_time_s']:.3f} s for a floor of {result['floor_s']:.3f} s (+{result['wall_time_s'] - result['floor_s']:.3f} s)"
        )
    for name, count in result["per_receiver"].items():
        print(f"  {name}: {count} frames")
    if not args.no_saving:
        master = json.loads(conductor.master_files).get("frame", ["", ""])
        print(f"  files in {data_dir}: {len(list(data_dir.glob('*.h5')))}, master file {master[0]} ({master[1]})")
        if not args.saving_dir and not args.keep and _run_ok(result):
            print("  (removed at exit: use --saving-dir DIR to keep them)")
    for err in result["errors"]:
        print(f"  error: {err}")


def demo(args: argparse.Namespace) -> int:
    import tango

    workdir = Path(tempfile.mkdtemp(prefix="lima2-demo-"))
    data_dir = Path(args.saving_dir) if args.saving_dir else workdir / "data"
    print(
        f"Starting NosqlTangoDB, a simulated control, {args.receivers} receiver(s) and the conductor (logs in {workdir})"
    )
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGHUP, _raise_interrupt)  # terminal closed: stop the servers too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    ok = False
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with local_system(args.receivers, conductor=True, workdir=workdir) as system:
            os.environ["TANGO_HOST"] = system.tango_host
            conductor = tango.DeviceProxy(CONDUCTOR)
            print(f"TANGO_HOST={system.tango_host}  conductor {CONDUCTOR}: {conductor.State()}")
            if args.fail_at_frame is not None:
                tango.DeviceProxy(receiver_name(0)).sim_fail_at_frame = args.fail_at_frame
                print(f"Fault knob: {receiver_name(0)} fails at frame {args.fail_at_frame}")
            params = {
                "processing": {
                    "saving": {
                        "enabled": not args.no_saving,
                        "base_path": str(data_dir),
                        "file_exists_policy": "overwrite",
                    }
                }
            }
            result = run_acquisition(conductor, args.nb_frames, args.expo_time, args.latency_time, params=params)
            _print_summary(result, conductor, args, data_dir)
            ok = _run_ok(result)
            if args.keep:
                print(f"Everything keeps running: export TANGO_HOST={system.tango_host}  (Ctrl+C to stop)")
                while True:
                    time.sleep(1)
    except KeyboardInterrupt:
        print("\nInterrupted: stopping every process")
    except (tango.DevFailed, OSError, RuntimeError, TimeoutError) as exc:
        ok = False
        print(f"error: {_describe_error(exc)}", file=sys.stderr)
    finally:
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"Logs kept in {workdir}")
    print("All processes stopped.")
    return 0 if ok else 1


def _use_tango_host(args: argparse.Namespace) -> None:
    if args.tango_host:
        os.environ["TANGO_HOST"] = args.tango_host
    elif not os.environ.get("TANGO_HOST"):
        print("warning: TANGO_HOST is not set (use --tango-host HOST:PORT)", file=sys.stderr)


def shell(args: argparse.Namespace) -> int:
    from .shell import start

    _use_tango_host(args)
    start(args.device)
    return 0


def gui(args: argparse.Namespace) -> int:
    """The Taurus panel of a conductor (needs the ``gui`` extra)."""
    _use_tango_host(args)
    try:
        from ..gui.panel import run_panel
    except ImportError as exc:
        print(f"The GUI needs the gui extra ({exc}): pip install 'lima2-tango-conductor[gui]'", file=sys.stderr)
        return 2
    return run_panel(args.device)


def register(args: argparse.Namespace) -> int:
    """Write the configuration into the database of TANGO_HOST (see :mod:`.registration`)."""
    from . import registration

    conductor_opts = (args.control, args.receivers, args.device, args.instance, args.topology)
    if any(conductor_opts) and not args.only_conductor:
        print(
            "error: --control, --receivers, --device, --instance and --topology need --only-conductor", file=sys.stderr
        )
        return 2
    try:
        conf = registration.load(args.files)
        if args.only_conductor:
            conf = registration.conductor_only(
                conf, args.control, args.receivers, args.device, args.instance, args.topology
            )
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    conf.allow_read_only_commands()
    _use_tango_host(args)
    import tango

    where = os.environ.get("TANGO_HOST", "?")
    try:
        db = tango.Database()
        changes = registration.register(conf, db, dry_run=args.dry_run)
    except tango.DevFailed as exc:
        if not args.dry_run:
            print(f"error: {_describe_error(exc)}", file=sys.stderr)
            return 1
        print(f"warning: no database at {where} ({_describe_error(exc)}): every write listed", file=sys.stderr)
        changes = registration.plan(conf, None)
    for change in changes:
        print(change.describe())
    needed = sum(c.needed for c in changes)
    if args.dry_run:
        print(f"dry run: {needed} write(s) needed in {where}, nothing written")
    else:
        print(f"{needed} write(s) in {where}, {len(changes) - needed} unchanged")
    return 0


def _number(kind: Callable[[str], Any], test: Callable[[Any], bool], rule: str) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` that passes ``test`` (else an error naming ``rule``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text} is not allowed: {rule}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lima2-tango-conductor",
        description="The Lima2 conductor: a simulated demo, a shell, a GUI and its registration in a Tango database.",
    )
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="{demo,shell,gui,register}")
    d = sub.add_parser(
        "demo",
        help="run the whole simulated system and one acquisition",
        description="Start NosqlTangoDB, a simulated control and receivers and the conductor, run one "
        "acquisition with a progress display and a summary, then stop everything. The logs are kept "
        "when the run fails.",
    )
    d.add_argument(
        "--receivers", type=_number(int, lambda v: v >= 1, "at least 1"), default=2, help="receivers (default 2)"
    )
    d.add_argument(
        "--nb-frames",
        type=_number(int, lambda v: v >= 0, "0 (endless) or more"),
        default=120,
        help="frames (default 120); 0 = endless, until Ctrl+C",
    )
    d.add_argument(
        "--expo-time",
        type=_number(float, lambda v: math.isfinite(v) and v > 0, "more than 0 s"),
        default=0.02,
        help="exposure time in s (default 0.02)",
    )
    d.add_argument(
        "--latency-time",
        type=_number(float, lambda v: math.isfinite(v) and v >= 0, "0 s or more"),
        default=0.0,
        help="latency time in s (default 0)",
    )
    d.add_argument("--saving-dir", help="save the frames there and keep them")
    d.add_argument("--no-saving", action="store_true", help="do not save frames")
    d.add_argument(
        "--fail-at-frame",
        type=_number(int, lambda v: v >= 0, "0 or more"),
        help="make the first receiver fail at this frame (fault knob), to see how a fault is reported",
    )
    d.add_argument("--keep", action="store_true", help="leave everything running for Jive, itango and Taurus")
    d.set_defaults(func=demo)

    s = sub.add_parser(
        "shell",
        help="IPython with itango and helpers bound to a conductor",
        description='IPython with itango (Device("<tab> completion, lsdev, mon...) and `conductor` (a proxy), '
        "`acquisition`, `detector`, `pipeline` and run_acquisition(nb_frames, expo_time).",
    )
    g = sub.add_parser(
        "gui",
        help="a Taurus panel of a conductor",
        description="A Taurus panel: State and Status, acquisition settings, Prepare/Start/Stop/Reset, "
        "progress bars, receiver states and the live image (needs the gui extra).",
    )
    for p in (s, g):
        p.add_argument("device", nargs="?", default=CONDUCTOR, help=f"conductor device (default {CONDUCTOR})")
        p.add_argument("--tango-host", help="HOST:PORT of the Tango database (default: $TANGO_HOST)")
    s.set_defaults(func=shell)
    g.set_defaults(func=gui)

    r = sub.add_parser(
        "register",
        help="write the servers, devices and properties into the Tango database",
        description="Write the servers, devices, device properties and class properties of tango_db/ "
        "(or of the given NosqlTangoDB YAML files) into the database of TANGO_HOST (DataBaseds or "
        "NosqlTangoDB), with AllowedAccessCmd (the read-only commands) of the conductor and processing "
        "classes. What the database already holds is left alone: running it twice writes nothing.",
    )
    r.add_argument("files", nargs="*", help="YAML files or directories (default: tango_db/)")
    r.add_argument("--tango-host", help="HOST:PORT of the Tango database (default: $TANGO_HOST)")
    r.add_argument("--dry-run", action="store_true", help="print what would be written, write nothing")
    r.add_argument(
        "--only-conductor",
        action="store_true",
        help="register only the conductor (and the AllowedAccessCmd properties), for existing Lima2 devices",
    )
    r.add_argument("--control", help="with --only-conductor: the Lima2 control device")
    r.add_argument("--receivers", nargs="+", metavar="DEV", help="with --only-conductor: the Lima2 receiver devices")
    r.add_argument("--device", help="with --only-conductor: the conductor's device name")
    r.add_argument("--instance", help="with --only-conductor: the Lima2Conductor server instance")
    r.add_argument("--topology", help="with --only-conductor: single, round_robin or dynamic")
    r.set_defaults(func=register)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))
