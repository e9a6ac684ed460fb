"""Simulated caproto IOCs of the beamline, one module per IOC (run with ``python -m``)."""
