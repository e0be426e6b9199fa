"""Tango server plumbing shared by the conductor and the simulated Lima2 devices: which
requests a device serves in PyTango's request thread (:mod:`.request_thread`) and pushed
attributes that readers meet through the polling buffer (:mod:`.pushed_values`)."""
