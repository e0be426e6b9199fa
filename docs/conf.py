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
