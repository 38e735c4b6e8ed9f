"""Consensus engines: one module per protocol, each a sans-IO ``Engine`` (see ``sim/engine.py``)."""
