"""The ``shell`` command: IPython with itango and helpers bound to one conductor.

itango builds its device completion from two ``DbMySqlSelect`` queries. NosqlTangoDB
(the demo's and the tests' database) answers them with an empty, column-less result,
which makes itango's start-up fail. :func:`load_ipython_extension` loads itango piece by
piece and, only when the database gives such an answer (or refuses the command), fills
the two queries from the ordinary database API. Against a Tango database that answers
``DbMySqlSelect``, nothing is changed.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from types import SimpleNamespace
from typing import Any

#: The two queries itango's ``init_db`` makes, and the columns it expects back.
_DEVICE_QUERY = re.compile(r"select\s+name\s*,\s*alias\s*,\s*server\s*,\s*class\s+from\s+device\b", re.I)
_ATTR_ALIAS_QUERY = re.compile(r"select\s+name\s*,\s*alias\s+from\s+attribute_alias\b", re.I)


def namespaces(conductor: Any) -> dict[str, Any]:
    """The shell's ``acquisition``, ``detector`` and ``pipeline`` helpers on a proxy.

    * ``acquisition``: ``prepare(params)``, ``start()``, ``trigger()``, ``stop()``,
      ``close()``, ``reset()``, ``state()`` (Tango state, run state), ``status()``,
      ``progress()`` (every counter), ``errors()``.
    * ``detector``: ``info()``, ``status()``, ``capabilities()`` (decoded JSON).
    * ``pipeline``: ``progress()`` (frames processed), ``lookup(frame_idx)``,
      ``frame(frame_idx, source)`` (a numpy array), ``channels()``,
      ``reduced_data(name, channel, from_frame, max_rows)`` (a structured array),
      ``master_files()``.
    """
    from ..core.devencoded import decode_frame, decode_rows
    from ..core.reduced_data import STATS_DTYPE

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


def user_namespace(device: str) -> dict[str, Any]:
    """``conductor`` (a proxy to ``device``), the helpers and ``run_acquisition``."""
    import tango

    from .acquire import run_acquisition

    conductor = tango.DeviceProxy(device)

    def run(nb_frames: int, expo_time: float, **kwargs: Any) -> dict[str, Any]:
        """Prepare, start and wait for one acquisition (see :func:`lima2_conductor.cli.acquire.run_acquisition`)."""
        return run_acquisition(conductor, nb_frames, expo_time, **kwargs)

    return {"conductor": conductor, "tango": tango, "run_acquisition": run, **namespaces(conductor)}


# -- itango on databases without DbMySqlSelect ------------------------------------------


def _select_from_api(db: Any, query: str) -> tuple[list[int], list[str]] | None:
    """Answer one of itango's two queries with the ordinary database API (None: another query)."""
    if _DEVICE_QUERY.search(query):
        alias_of = {}
        for alias in db.get_device_alias_list("*").value_string:
            alias_of[db.get_device_from_alias(alias).lower()] = alias
        rows = []
        for server in db.get_server_list("*").value_string:
            pairs = list(db.get_device_class_list(server).value_string)
            for device, klass in zip(pairs[0::2], pairs[1::2], strict=True):
                rows.append([device, alias_of.get(device.lower(), ""), server, klass])
        rows.sort()
        return [len(rows), 4], [cell for row in rows for cell in row]
    if _ATTR_ALIAS_QUERY.search(query):
        aliases = sorted(db.get_attribute_alias_list("*").value_string)
        cells = [c for alias in aliases for c in (db.get_attribute_from_alias(alias), alias)]
        return [len(aliases), 2], cells
    return None


def install_select_fallback() -> None:
    """Make ``Database.command_inout("DbMySqlSelect", q)`` answer itango's queries where
    the database cannot (an error, or a result without columns); idempotent."""
    import tango

    original = tango.Database.command_inout
    if getattr(original, "_lima2_fallback", False):
        return

    @functools.wraps(original)
    def command_inout(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        if name != "DbMySqlSelect" or not args or not isinstance(args[0], str):
            return original(self, name, *args, **kwargs)
        try:
            result = original(self, name, *args, **kwargs)
        except tango.DevFailed:
            result = None
        if result is not None and len(result[0]) >= 2 and int(result[0][-1]) > 0:
            return result
        emulated = _select_from_api(self, args[0])
        if emulated is not None:
            return emulated
        if result is None:
            return original(self, name, *args, **kwargs)  # the original error
        return result

    command_inout._lima2_fallback = True  # type: ignore[attr-defined]
    tango.Database.command_inout = command_inout


def load_ipython_extension(ip: Any) -> None:
    """IPython extension: itango's display, ``Device``/``Attribute`` helpers, device
    completion and magics (``lsdev``, ``mon``...), on any Tango database."""
    from itango import itango as it

    install_select_fallback()
    it.init_display(ip)
    it.init_pytango(ip)
    try:
        it.init_db()
    except Exception as exc:  # noqa: BLE001 - no completion, the rest still works
        warnings.warn(f"itango: no device completion ({exc!r})", stacklevel=1)
    it.init_magic(ip)
    it._tango_init = True


def start(device: str, argv: list[str] | None = None) -> None:
    """Start IPython with itango loaded and the conductor helpers in the namespace."""
    from IPython import start_ipython
    from traitlets.config import Config

    namespace = user_namespace(device)
    config = Config()
    config.InteractiveShellApp.extensions = ["lima2_conductor.cli.shell"]
    config.TerminalIPythonApp.display_banner = True
    config.TerminalInteractiveShell.banner2 = (
        f"Lima2 conductor {device}: `conductor`, `acquisition`, `detector`, `pipeline`, "
        'run_acquisition(nb_frames, expo_time); itango: Device("<tab>, lsdev, mon\n'
    )
    start_ipython(argv=list(argv or []), user_ns=namespace, config=config)
