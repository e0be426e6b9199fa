"""The processing plugins' names and versions, and when a plugin is refused, without a
Bliss session (pure helpers)."""

from __future__ import annotations

import enum

import pytest

from lima2_conductor.bliss.params import PLUGIN_CLASSES, class_refusal, plugin_name, version_allowed


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


def offered(version: str = "core-1.2.0", **entry: object) -> dict[str, object]:
    return {"offered": True, "version": version, "default": False, "error": "", **entry}


@pytest.mark.parametrize(
    ("entry", "refusal"),
    [
        (offered(), ""),
        (offered("core-1.2.7-rc1"), ""),
        (offered("core-2.0.0"), "LimaProcessingFai version core-2.0.0 is not one of core-1.2, dectris-1.2"),
        (offered("", error="Version: no Version"), "LimaProcessingFai version none is not one of"),
        (
            offered(offered=False, error="proc_params schema: no proc_params schema"),
            "no Lima2 server offers LimaProcessingFai (proc_params schema: no proc_params schema)",
        ),
        (offered(offered=False), "no Lima2 server offers LimaProcessingFai"),
        (None, "the conductor does not conduct LimaProcessingFai (it conducts: LimaProcessingLegacy)"),
    ],
)
def test_a_plugin_is_refused_as_the_conductor_says(entry: dict[str, object] | None, refusal: str) -> None:
    """From the conductor's ``processing_classes``: offered, in an allowed version."""
    classes = {"LimaProcessingLegacy": offered()}
    if entry is not None:
        classes["LimaProcessingFai"] = entry
    why = class_refusal(classes, "LimaProcessingFai")
    assert why.startswith(refusal) and bool(why) is bool(refusal)
