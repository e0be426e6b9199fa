"""Sphinx configuration of lima2-tango-conductor."""

project = "lima2-tango-conductor"
author = "lima2-tango-conductor authors"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_mock_imports = ["tango"]
html_theme = "alabaster"
exclude_patterns = ["_build"]
