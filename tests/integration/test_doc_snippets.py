"""The code examples of ``README.rst`` and ``docs/*.rst`` run as written.

Convention: an rst comment right before a code block says that the block is meant to
run, and against what (blank lines may separate the comment from the block)::

    .. test: simulated

    .. code-block:: python

       import tango
       c = tango.DeviceProxy("id00/lima2conductor/simulator")

* ``.. test: simulated`` on a ``python`` block: run against the default simulated system
  of the integration tests (control, two receivers, conductor
  ``id00/lima2conductor/simulator``, the session's ``TANGO_HOST``). The marked blocks of
  one file run in the order of the file, in one namespace: a block may use what an
  earlier one of the same file defined (the README's ``c``).
* ``.. test: shell`` on a ``shell`` block: a script-like sequence that starts its own
  system (:func:`test_running_the_servers_yourself`). It is run by ``bash`` in a
  temporary copy of the checkout (``tango_db/`` copied, ``.venv`` a link to this
  interpreter's environment), with the checkout's path ``~/lima2-tango-conductor`` and
  the port ``10000`` of the block replaced by that copy and a free port.

Blocks without a comment are not run (Bliss sessions, a real control system, YAML).
Blocks rendered by Sphinx are unchanged: an rst comment does not appear in the output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import tango

from lima2_conductor.cli.launcher import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]
MARK = re.compile(r"^\.\. test: (?P<kind>\S+)\s*$")
BLOCK = re.compile(r"^\.\. code-block:: (?P<language>\S+)\s*$")
KINDS = {"simulated": "python", "shell": "shell"}
CHECKOUT = "~/lima2-tango-conductor"
PORT = "10000"


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # of the first line of code, 1-based
    kind: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def snippets(path: Path) -> list[Snippet]:
    """The marked code blocks of one rst file, in order; a marker that is not followed
    by a code block of its kind's language is an error (a typo must not skip a block)."""
    lines = path.read_text().splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        mark = MARK.match(lines[i])
        i += 1
        if not mark:
            continue
        kind = mark["kind"]
        where = f"{path.relative_to(ROOT)}:{i}"
        assert kind in KINDS, f"{where}: unknown test kind {kind!r} (known: {', '.join(KINDS)})"
        while i < len(lines) and not lines[i].strip():
            i += 1
        block = BLOCK.match(lines[i]) if i < len(lines) else None
        assert block and block["language"] == KINDS[kind], f"{where}: not followed by a {KINDS[kind]} code block"
        i += 1
        while i < len(lines) and lines[i].strip().startswith(":"):  # the directive's options
            i += 1
        body: list[str] = []
        first = 0
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            if lines[i].strip() and not first:
                first = i + 1
            body.append(lines[i])
            i += 1
        code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
        found.append(Snippet(path, first, kind, code))
    return found


ALL = {path: snippets(path) for path in DOCUMENTS}
SIMULATED = {path: [s for s in found if s.kind == "simulated"] for path, found in ALL.items()}
SHELL = [s for found in ALL.values() for s in found if s.kind == "shell"]


def test_the_readme_examples_are_marked() -> None:
    """The README's Python examples and its server sequence are among the tested ones."""
    readme = ALL[ROOT / "README.rst"]
    assert len([s for s in readme if s.kind == "simulated"]) >= 2
    assert len([s for s in readme if s.kind == "shell"]) == 1


@pytest.mark.parametrize("path", [p for p, found in SIMULATED.items() if found], ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run_against_the_simulated_system(
    path: Path, conductor: tango.DeviceProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' saving directories
    namespace: dict[str, object] = {"__name__": f"snippets of {path.name}"}
    for snippet in SIMULATED[path]:
        # Line numbers of tracebacks are those of the rst file.
        code = compile("\n" * (snippet.line - 1) + snippet.code, str(snippet.path), "exec")
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {snippet.where} fails: {exc!r}") from exc
    conductor.Stop()  # whatever an example left running


def test_running_the_servers_yourself(tmp_path: Path) -> None:
    """The README's sequence, in bash, in a copy of the checkout: its acquisition prints
    DONE and it stops every process it started."""
    (snippet,) = SHELL
    assert CHECKOUT in snippet.code and PORT in snippet.code, snippet.where
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    shutil.copytree(ROOT / "tango_db", checkout / "tango_db")
    (checkout / ".venv").symlink_to(sys.prefix)
    script = snippet.code.replace(CHECKOUT, str(checkout)).replace(PORT, str(free_port()))
    (tmp_path / "sequence.sh").write_text(script)
    env = {k: v for k, v in os.environ.items() if k not in ("TANGO_HOST", "VIRTUAL_ENV")}
    env["TMPDIR"] = str(tmp_path)  # where the sequence's log directory goes
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # a fresh shell: the venv is not on it
    proc = subprocess.Popen(
        ["bash", "-e", str(tmp_path / "sequence.sh")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # every process it starts is in its group
    )
    try:
        out, _ = proc.communicate(timeout=300)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in tmp_path.glob("tmp*/*.log"))
        assert proc.returncode == 0, f"{out}\n{logs}"
        assert out.strip().splitlines()[-1] == "DONE", f"{out}\n{logs}"
        wait_for(lambda: not group_alive(proc.pid), 30, "the end of every process the sequence started")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # only what is left after a failure


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
