"""``Init`` during runs: an operator's Init (Jive, Astor) answers within the client's
timeout whatever the devices are doing, and the run it interrupted is adopted and ends."""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time

import tango

from lima2_conductor.cli.launcher import CONDUCTOR, receiver_name, wait_for

CLIENT_TIMEOUT_MS = 3000
"""Tango's default client timeout: what Jive, Astor and a script get."""
REPEATS = int(os.environ.get("LIMA2_INIT_REPEATS", "50"))
NB_FRAMES = 1000  # 1 ms apart: the run goes on for a while after the Init, which sees it running


def test_init_during_runs_answers_in_time_and_the_run_is_adopted(conductor: tango.DeviceProxy) -> None:
    c = conductor
    params = json.dumps({"control": {"acq": {"nb_frames": NB_FRAMES}}})  # settings go back to memorized at Init
    operator = tango.DeviceProxy(CONDUCTOR)
    operator.set_timeout_millis(CLIENT_TIMEOUT_MS)
    seed = int(os.environ.get("LIMA2_INIT_SEED", str(random.randrange(2**32))))
    print(f"LIMA2_INIT_SEED={seed}")
    rng = random.Random(seed)
    took: list[float] = []
    for k in range(REPEATS):
        wait_for(lambda: c.State() != tango.DevState.INIT, 10, f"conductor initialised ({k})")
        uid = c.Prepare(params)
        c.Start()
        target = rng.randrange(0, NB_FRAMES // 2)  # anywhere in the first half of the run
        wait_for(lambda t=target: c.nb_frames_xferred >= t, 10, f"frame {target} of run {k}")
        t0 = time.monotonic()
        operator.Init()  # raises API_DeviceTimedOut beyond the client's timeout
        took.append(time.monotonic() - t0)
        wait_for(lambda: c.run_state == "DONE", 20, f"run {k} adopted after Init and done")
        assert c.acq_uuid == uid
        assert c.nb_frames_xferred == NB_FRAMES
    took.sort()
    print(f"Init took {1000 * took[len(took) // 2]:.0f} ms (median), {1000 * took[-1]:.0f} ms (longest)")


def test_init_while_a_receiver_hangs_answers_in_time(conductor: tango.DeviceProxy) -> None:
    """A Stop under way is blocked by a hung receiver (its whole server sleeps): an Init
    meanwhile answers within the client's timeout all the same."""
    c = conductor
    c.Prepare(json.dumps({"control": {"acq": {"nb_frames": 0}}}))
    c.Start()
    wait_for(lambda: c.nb_frames_xferred > 0, 10, "frames flowing")
    tango.DeviceProxy(receiver_name(1)).sim_hang = 2.5  # its next command: the Stop

    def stop() -> None:
        with contextlib.suppress(tango.DevFailed):  # its answer may come after the client's timeout
            tango.DeviceProxy(CONDUCTOR).Stop()

    stopping = threading.Thread(target=stop)
    stopping.start()
    wait_for(lambda: c.run_state == "STOPPING", 5, "Stop under way")
    operator = tango.DeviceProxy(CONDUCTOR)
    operator.set_timeout_millis(CLIENT_TIMEOUT_MS)
    t0 = time.monotonic()
    operator.Init()  # raises API_DeviceTimedOut beyond the client's timeout
    print(f"Init took {1000 * (time.monotonic() - t0):.0f} ms while a receiver hangs")
    stopping.join(10)
    wait_for(lambda: c.State() != tango.DevState.INIT, 10, "conductor initialised")
    c.Stop()
    wait_for(lambda: not c.running, 10, "the run ended")
    c.Reset()
    wait_for(lambda: set(json.loads(c.device_states).values()) == {"IDLE"}, 10, "every device IDLE")
