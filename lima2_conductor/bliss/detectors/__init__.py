"""Detector plugins: ``det.detector``, the settings of one detector model.

As with Bliss's Lima2 controller, the plugin is chosen by the ``plugin`` of the
detector's ``det_info`` (``Simulator`` -> :mod:`.simulator`); a detector without a
module here gets :class:`DetectorPlugin` itself, with no settings. A plugin declares
each setting by the path of its value in the ``control`` params of ``Prepare``
(:attr:`DetectorPlugin.settings`); defaults and checks come from the control schema the
conductor publishes (``ParamsSchema``), so a plugin is a table, not code. The values are
kept in Beacon (one hash per detector object and plugin) and every scan sends them.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

import jsonschema
from bliss.config.settings import HashObjSetting

from ...core.params import defaults_from_schema

logger = logging.getLogger(__name__)

Schema = Callable[[], dict[str, Any]]
"""Returns the conductor's control params schema (``{}`` when it cannot be read)."""


def schema_at(schema: dict[str, Any], path: Iterable[str]) -> dict[str, Any]:
    """The sub-schema of the value at ``path`` (``{}`` if the schema has no such value)."""
    for key in path:
        schema = schema.get("properties", {}).get(key, {})
    return schema


class SettingsView:
    """One level of ``det.detector``: settings read and written by attribute, a dotted
    setting name (``generator.type``) being a level of its own (``generator``)."""

    def __init__(self, plugin: DetectorPlugin, prefix: str) -> None:
        object.__setattr__(self, "_plugin", plugin)
        object.__setattr__(self, "_prefix", prefix)

    def _names(self) -> list[str]:
        """The names directly at this level (settings and sub-levels), in declared order."""
        names: list[str] = []
        for full in self._plugin.settings:
            if full.startswith(self._prefix):
                name = full[len(self._prefix) :].split(".", 1)[0]
                if name not in names:
                    names.append(name)
        return names

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        full = self._prefix + name
        if full in self._plugin.settings:
            return self._plugin.get(full)
        if name in self._names():
            return SettingsView(self._plugin, full + ".")
        raise AttributeError(f"{self._plugin.title}: no setting {full!r} (have: {', '.join(self._plugin.settings)})")

    def __setattr__(self, name: str, value: Any) -> None:
        self._plugin.set(self._prefix + name, value)

    def __dir__(self) -> Iterable[str]:
        return self._names()

    def __info__(self) -> str:
        names = [n for n in self._plugin.settings if n.startswith(self._prefix)]
        if not names:
            return "no detector setting"
        values = self._plugin.values()
        return "\n".join(f"{n[len(self._prefix) :]:28s} {values[n]!r}" for n in names)


class DetectorPlugin(SettingsView):
    """``det.detector`` of a detector without a plugin of its own: no settings.

    A subclass sets :attr:`settings` (setting name -> dotted path in the control params)
    and may override :meth:`additional_det_info` (the master file's extended det_info).
    """

    settings: dict[str, str] = {}

    def __init__(self, key: str, plugin_name: str, control_schema: Schema) -> None:
        super().__init__(self, "")
        object.__setattr__(self, "title", f"{plugin_name} detector")
        object.__setattr__(self, "plugin_name", plugin_name)
        object.__setattr__(self, "_store", HashObjSetting(key))
        object.__setattr__(self, "_control_schema", control_schema)

    def _schema(self, name: str) -> dict[str, Any]:
        return schema_at(self._control_schema(), self.settings[name].split("."))

    def get(self, name: str, stored: dict[str, Any] | None = None) -> Any:
        """The value of setting ``name``: the one set (in ``stored``, the values read at
        once, if given), else the conductor's default."""
        if stored is None:
            stored = {name: self._store[name]} if name in self._store else {}
        if name in stored:
            return stored[name]
        schema = self._schema(name)
        return defaults_from_schema(schema) if schema else None

    def values(self) -> dict[str, Any]:
        """Every setting's value (one read of Beacon)."""
        stored = dict(self._store.get_all())
        return {name: self.get(name, stored) for name in self.settings}

    def set(self, name: str, value: Any) -> None:
        """Check ``value`` against the conductor's schema of its control param; keep it."""
        if name not in self.settings:
            raise AttributeError(f"{self.title}: no setting {name!r} (have: {', '.join(self.settings)})")
        schema = self._schema(name)
        if schema:
            try:
                jsonschema.validate(value, schema)
            except jsonschema.ValidationError as exc:
                where = "".join(f"[{p}]" for p in exc.absolute_path)
                raise ValueError(f"det.detector.{name}{where}: {exc.message}") from None
        else:
            logger.warning("%s: no schema for %s (conductor unreachable?): not checked", self.title, name)
        self._store[name] = value

    def reset(self) -> None:
        """Every setting back to the conductor's default."""
        self._store.clear()

    def control_params(self) -> dict[str, Any]:
        """The part of Prepare's ``control`` params the plugin's settings make."""
        out: dict[str, Any] = {}
        values = self.values()
        for name, path in self.settings.items():
            value = values[name]
            if value is None:
                continue
            *parents, leaf = path.split(".")
            node = out
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return out

    def additional_det_info(self) -> dict[str, Any]:
        """What ``masterfile_metadata.extended_det_info`` adds to the master file's
        det_info: here the plugin's settings, nested by their dotted names."""
        out: dict[str, Any] = {}
        for name, value in self.values().items():
            *parents, leaf = name.split(".")
            node = out
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return out

    def __info__(self) -> str:
        return f"{self.title} (det.detector):\n" + "\n".join("    " + line for line in super().__info__().splitlines())

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__} {self.plugin_name}>"


def load_plugin(plugin_name: str, key: str, control_schema: Schema) -> DetectorPlugin:
    """The plugin of the detector whose det_info names ``plugin_name``; the settings-less
    :class:`DetectorPlugin` when this package has none for it."""
    module_name = plugin_name.strip().lower()
    if not module_name.isidentifier():
        logger.warning("detector plugin name %r is not a module name: no detector settings", plugin_name)
        return DetectorPlugin(key, plugin_name, control_schema)
    full = f"{__name__}.{module_name}"
    try:
        module = importlib.import_module(full)
    except ModuleNotFoundError as exc:
        if exc.name != full:
            raise
        logger.warning("no detector plugin for %r (%s): no detector settings", plugin_name, full)
        return DetectorPlugin(key, plugin_name, control_schema)
    plugin: DetectorPlugin = module.Detector(key, plugin_name, control_schema)
    return plugin
