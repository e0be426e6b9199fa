"""A Tango client on a simulated host, driven by JSON lines on stdin.

The test process cannot be a Tango client of the simulated hosts itself: it lives in the
root namespace (no route to them) and a process reads ``TANGO_HOST`` once (the other
tiers' database). So each request, ``{"code": ..., "eval": bool}``, is run here, in one
namespace shared by every request (helpers below), and answered with one line:
``{"ok": value}`` or ``{"error": {"reason", "desc", "type"}}``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from typing import Any

import numpy as np
import tango

from lima2_conductor.core.devencoded import decode_frame
from lima2_conductor.simulator.frames import stamped_index

_proxies: dict[str, tango.DeviceProxy] = {}
_events: dict[str, list[tuple[float, Any]]] = {}
_lock = threading.Lock()
_probe: dict[str, Any] = {}


def dev(name: str, timeout_ms: int = 3000) -> tango.DeviceProxy:
    """One proxy per device (made on first use)."""
    if name not in _proxies:
        proxy = tango.DeviceProxy(name)
        proxy.set_timeout_millis(timeout_ms)
        _proxies[name] = proxy
    return _proxies[name]


def subscribe(name: str, attr: str) -> None:
    """Record every change event of ``attr`` (monotonic time, value)."""
    key = f"{name}/{attr}"
    _events.setdefault(key, [])

    def callback(event: Any) -> None:
        if event.err or event.attr_value is None:
            return
        value = event.attr_value.value
        value = value.item() if isinstance(value, np.generic) else value
        value = str(value) if isinstance(value, tango.DevState) else value
        with _lock:
            _events[key].append(
                (time.monotonic(), value if isinstance(value, int | float | str | bool) else str(value))
            )

    dev(name).subscribe_event(attr, tango.EventType.CHANGE_EVENT, callback)


def events(name: str, attr: str) -> list[tuple[float, Any]]:
    with _lock:
        return list(_events.get(f"{name}/{attr}", []))


def clear_events() -> None:
    with _lock:
        for v in _events.values():
            v.clear()


def now() -> float:
    return time.monotonic()


def wait_value(name: str, attr: str, values: list[Any], timeout: float, period_s: float = 0.01) -> dict[str, Any]:
    """Read ``attr`` until it is one of ``values``: the value and when it was seen (monotonic)."""
    end = time.monotonic() + timeout
    proxy = dev(name)
    while True:
        value = proxy.read_attribute(attr).value
        if value in values or time.monotonic() > end:
            return {"value": value, "at": time.monotonic()}
        time.sleep(period_s)


def get_frame(name: str, idx: int, source: str = "frame") -> dict[str, Any]:
    """``GetFrame`` with its duration, the index it says and the index stamped in the pixels."""
    t0 = time.monotonic()
    frame, got = decode_frame(dev(name).GetFrame([[idx], [source]]))
    ms = 1000 * (time.monotonic() - t0)
    return {"idx": int(got), "stamp": stamped_index(frame[0]), "shape": list(frame.shape), "ms": ms}


def reduced(name: str, channel: int, source: str = "roi_stats") -> dict[str, list[Any]]:
    from lima2_conductor.core.devencoded import decode_rows
    from lima2_conductor.core.reduced_data import STATS_DTYPE

    rows = decode_rows(dev(name).GetReducedData([[channel, 0, 0], [source]]), STATS_DTYPE)
    return {"frame_idx": rows["frame_idx"].tolist(), "avg": rows["avg"].tolist(), "sum": rows["sum"].tolist()}


def probe_start(name: str, period_s: float = 0.02) -> None:
    """Read ``State`` and ``Status`` of ``name`` every ``period_s`` in a thread, timing each."""
    probe_stop()
    proxy = tango.DeviceProxy(name)
    proxy.set_timeout_millis(3000)
    stop = threading.Event()
    record: dict[str, Any] = {"durations": [], "at": [], "errors": [], "stop": stop}

    def loop() -> None:
        while not stop.is_set():
            for call in (proxy.State, proxy.Status):
                t0 = time.monotonic()
                try:
                    call()
                except tango.DevFailed as exc:
                    record["errors"].append(exc.args[0].reason)
                record["durations"].append(time.monotonic() - t0)
                record["at"].append((t0, call.__name__))
            stop.wait(period_s)

    record["thread"] = threading.Thread(target=loop, daemon=True)
    record["thread"].start()
    _probe.update(record)


def probe_stop() -> dict[str, Any]:
    """Stop the probe: the number of calls, the longest (ms) and the errors."""
    if not _probe:
        return {"n": 0, "max_ms": 0.0, "errors": []}
    _probe["stop"].set()
    _probe["thread"].join(10)
    d = _probe["durations"]
    slowest = sorted(zip(d, _probe["at"], strict=True), reverse=True)[:5]
    out = {
        "n": len(d),
        "max_ms": 1000 * max(d, default=0.0),
        "errors": list(_probe["errors"]),
        "slowest": [(1000 * ms, at, what) for ms, (at, what) in slowest],
    }
    _probe.clear()
    return out


def _reply(line: str, scope: dict[str, Any]) -> dict[str, Any]:
    request = json.loads(line)
    try:
        if request.get("eval", True):
            value = eval(request["code"], scope)  # noqa: S307 - the test's own code
        else:
            exec(request["code"], scope)  # noqa: S102 - the test's own code
            value = None
        return {"ok": value}
    except tango.DevFailed as exc:
        err = exc.args[0]
        return {"error": {"type": "DevFailed", "reason": err.reason, "desc": err.desc}}
    except Exception as exc:  # noqa: BLE001 - sent back to the test
        return {"error": {"type": type(exc).__name__, "reason": "", "desc": traceback.format_exc()}}


def main() -> None:
    sys.setswitchinterval(0.0005)  # a thread waiting for the GIL (the State probe) waits little
    scope: dict[str, Any] = {name: value for name, value in globals().items() if not name.startswith("_")}
    print(json.dumps({"ok": "ready"}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(_reply(line, scope), default=str), flush=True)


if __name__ == "__main__":
    main()
