"""Consensus rules: pure functions and small value types. No IO, no clock, no sockets.

Everything a node decides about validity and fork choice lives here, so the real node
and the simulator run the same code. Time and data come in as arguments.
"""
