"""``Lima2Simulator INSTANCE``: a simulator device server.

One server class list for every instance; ``tango_db/`` decides which devices an
instance runs (a control, or a receiver). At start-up the server publishes the
``acq_params`` schema and, for every processing class, its ``proc_params`` schema and
``Version`` in the Tango database as class (attribute) properties, as the Lima2 servers do.
"""

from __future__ import annotations

import faulthandler
import json
import sys

import tango
from tango import GreenMode
from tango.server import run

from .control import LimaSimulatorControl
from .disk_space import exit_without_freeing
from .processing import DEVICE_CLASSES
from .receiver import LimaSimulatorReceiver
from .schemas import PROCESSING_VERSION, SCHEMAS, acq_params_schema, proc_params_schema

SERVER_NAME = "Lima2Simulator"


def publish_schemas() -> None:
    """Write the schemas of this server's sensor size to the database."""
    util = tango.Util.instance()
    db = util.get_database()
    for dev in util.get_device_list("*"):
        if isinstance(dev, LimaSimulatorControl | LimaSimulatorReceiver):
            schema = json.dumps(acq_params_schema(dev.sensor_width, dev.sensor_height))
            db.put_class_attribute_property(type(dev).__name__, {"acq_params": {"schema": schema}})
    for class_name in SCHEMAS:
        schema = json.dumps(proc_params_schema(class_name))
        db.put_class_attribute_property(class_name, {"proc_params": {"schema": schema}})
        db.put_class_property(class_name, {"Version": [PROCESSING_VERSION]})


def forget_stale_pipelines(instance: str) -> None:
    """Remove from the database the processing devices a previous run of this instance
    created: their pipelines died with it."""
    db = tango.Database()
    listing = list(db.get_device_class_list(f"{SERVER_NAME}/{instance}"))
    for name, cls in zip(listing[::2], listing[1::2], strict=True):
        if cls in DEVICE_CLASSES:
            db.delete_device(name)


def main(argv: list[str] | None = None) -> None:
    faulthandler.enable()  # a crash in a C library prints the Python stack to the log
    args = [SERVER_NAME, *(sys.argv[1:] if argv is None else argv)]
    if len(args) > 1 and not args[1].startswith("-"):
        forget_stale_pipelines(args[1])
    run(
        (LimaSimulatorControl, LimaSimulatorReceiver, *DEVICE_CLASSES.values()),
        args=args,
        green_mode=GreenMode.Asyncio,
        post_init_callback=publish_schemas,
    )
    exit_without_freeing()  # after a disk-full failure, before Python frees HDF5's objects


if __name__ == "__main__":
    main()
