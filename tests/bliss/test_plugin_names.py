"""The processing plugins' names and versions, without a Bliss session (pure helpers)."""

from __future__ import annotations

import enum

import pytest

from lima2_conductor.bliss.params import PLUGIN_CLASSES, plugin_name, version_allowed


def test_plugin_names_as_bliss_has_them() -> None:
    proc_plugin = enum.Enum("ProcPlugin", {name.upper(): cls for name, cls in PLUGIN_CLASSES.items()})
    for name in PLUGIN_CLASSES:
        assert plugin_name(name) == name
        assert plugin_name(name.upper()) == name
        assert plugin_name(proc_plugin[name.upper()]) == name  # Bliss's ProcPlugin member, by its name
        assert plugin_name(PLUGIN_CLASSES[name]) == name
    with pytest.raises(
        ValueError, match="no processing plugin 'classic': choose one of legacy, smx, xpcs, failing, fai"
    ):
        plugin_name("classic")


@pytest.mark.parametrize(
    ("version", "allowed"),
    [
        ("core-1.2.0", True),
        ("core-1.2.7-rc1", True),
        ("dectris-1.2.3", True),
        ("core-1.3.0", False),
        ("lima2-core-1.2.0", False),
        ("Core-1.2.0", False),
        ("core-1.2", False),
        ("1.2.3", False),
        ("", False),
    ],
)
def test_versions_the_plugins_run_with(version: str, allowed: bool) -> None:
    assert version_allowed(version) is allowed
