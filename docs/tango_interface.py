"""Sphinx extension: ``.. tango-interface:: package.module.DeviceClass`` renders the
device properties, attributes and commands that the class declares (see
``docs/interface_reference.py``)."""

from __future__ import annotations

import importlib

from docutils import nodes
from docutils.statemachine import StringList
from interface_reference import describe, to_rst
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective


class TangoInterface(SphinxDirective):
    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        module_name, _, class_name = self.arguments[0].rpartition(".")
        module = importlib.import_module(module_name)
        self.env.note_dependency(module.__file__)
        lines = to_rst(describe(getattr(module, class_name)))
        holder = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"<tango-interface {self.arguments[0]}>"), 0, holder)
        return list(holder.children)


def setup(app: Sphinx) -> dict[str, object]:
    app.add_directive("tango-interface", TangoInterface)
    return {"version": "1", "parallel_read_safe": True}
