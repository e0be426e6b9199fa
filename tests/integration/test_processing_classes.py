"""A client learns the processing classes from the conductor (``processing_classes``,
``ClassParamsSchema``, ``ClassDefaultParams``), never from the Tango database."""

from __future__ import annotations

import json

import pytest
import tango

from lima2_conductor.core import lima2
from lima2_conductor.simulator.schemas import PROCESSING_VERSION, proc_params_schema
from tests.integration.conftest import reason


def test_every_class_is_offered_in_the_published_version(conductor: tango.DeviceProxy) -> None:
    classes = json.loads(conductor.processing_classes)
    assert list(classes) == sorted(lima2.PIPELINES)
    for name, entry in classes.items():
        assert entry == {
            "offered": True,
            "version": PROCESSING_VERSION,
            "default": name == lima2.DEFAULT_PIPELINE,
            "error": "",
        }


def test_reads_in_a_row_all_answer(conductor: tango.DeviceProxy) -> None:
    """Each read asks the database for every class's Version, from worker threads at
    once: none of them stalls into the deadline (one database client per process)."""
    for _ in range(30):
        assert all(not e["error"] for e in json.loads(conductor.processing_classes).values())


def test_a_version_change_is_seen_at_the_next_read(conductor: tango.DeviceProxy) -> None:
    """What the Lima2 servers publish now, not what they published when the conductor
    connected; a class without a Version says so."""
    db = tango.Database()
    fai = lima2.FAI.class_name
    try:
        db.put_class_property(fai, {"Version": ["core-2.0.0"]})
        assert json.loads(conductor.processing_classes)[fai]["version"] == "core-2.0.0"
        db.put_class_property(fai, {"Version": [" "]})  # blank: published without a value
        entry = json.loads(conductor.processing_classes)[fai]
        assert entry["offered"] and entry["version"] == ""
        assert f"no Version for class {fai}" in entry["error"]
    finally:
        db.put_class_property(fai, {"Version": [PROCESSING_VERSION]})
    assert json.loads(conductor.processing_classes)[fai]["version"] == PROCESSING_VERSION


def test_one_class_schema_and_defaults(conductor: tango.DeviceProxy) -> None:
    smx = lima2.SMX.class_name
    schemas = json.loads(conductor.ClassParamsSchema(smx))
    published = schemas["processing"]["properties"]  # as the servers publish it (their paths, not ours)
    assert published["class_name"]["enum"] == [smx] and set(published) == set(proc_params_schema(smx)["properties"])
    assert set(schemas) == set(json.loads(conductor.ParamsSchema()))
    assert json.loads(conductor.ClassParamsSchema("")) == json.loads(conductor.ParamsSchema())
    assert json.loads(conductor.ClassDefaultParams("")) == json.loads(conductor.DefaultParams())
    conductor.saving_prefix = "classes"
    defaults = json.loads(conductor.ClassDefaultParams(smx))
    proc = defaults["processing"]
    assert proc["class_name"] == smx
    assert proc["saving_dense"]["filename_prefix"] == "classes"  # the settings, as a Prepare applies them
    assert proc["saving_sparse"]["filename_prefix"] == "classes_sparse_frame"
    assert defaults["control"]["acq"]["nb_frames"] == 10


def test_class_defaults_prepare_that_class(conductor: tango.DeviceProxy) -> None:
    fai = lima2.FAI.class_name
    proc = json.loads(conductor.ClassDefaultParams(fai))["processing"]
    try:
        conductor.Prepare(json.dumps({"processing": proc}))
        assert conductor.processing_class == fai
    finally:
        conductor.Reset()


@pytest.mark.parametrize("command", ["ClassParamsSchema", "ClassDefaultParams"])
def test_an_unknown_class_is_a_param_error_naming_the_known_ones(conductor: tango.DeviceProxy, command: str) -> None:
    with pytest.raises(tango.DevFailed) as info:
        conductor.command_inout(command, "LimaProcessingSaxs")
    assert reason(info) == "PARAM_ERROR"
    desc = info.value.args[0].desc
    assert "LimaProcessingSaxs" in desc and all(name in desc for name in lima2.PIPELINES)
