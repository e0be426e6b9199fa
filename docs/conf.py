"""Sphinx configuration of lima2-tango-conductor."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the tango_interface extension

project = "lima2-tango-conductor"
author = "lima2-tango-conductor contributors"
copyright = "lima2-tango-conductor contributors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "tango_interface"]
autodoc_member_order = "bysource"
html_theme = "alabaster"
html_static_path = ["_static"]
exclude_patterns = ["_build"]

# Every cross-reference must resolve (CI builds with -n). The only names left out are
# those of numpy and of the standard library, which only intersphinx resolves (online
# inventories: the build stays offline).
nitpicky = True
nitpick_ignore_regex = [
    ("py:class", r"numpy(\..*)?"),
    ("py:class", r"collections\.abc\..*"),
    ("py:class", r"os\._Environ"),
    ("py:class", r"asyncio\.locks\.Event"),
    ("py:class", r"_asyncio\.Task"),
]


def _plain_constant_docstrings() -> None:
    """A module constant's docstring is prose: Napoleon would read its first line as
    ``type: description`` (``"Pixels of row 0 ... (base 256: ...)"`` became a type)."""
    from sphinx.ext import napoleon

    process = napoleon._process_docstring

    def process_docstring(app: object, what: str, name: str, obj: object, options: object, lines: list[str]) -> None:
        if what not in ("data", "attribute"):
            process(app, what, name, obj, options, lines)

    napoleon._process_docstring = process_docstring


_plain_constant_docstrings()
