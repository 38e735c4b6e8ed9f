"""The deterministic network laboratory: a discrete-event simulator and consensus engines.

No asyncio and no sockets here: engines are sans-IO state machines (``engine.py``), the
simulator (``simulator.py``) runs them from its event queue (``events.py``) and carries
out what they return over a network model (``network.py``), and ``decisions.py`` turns
their commits into safety and liveness metrics. ``quorum.py`` is the one home of quorum
arithmetic; ``engines/`` holds the protocols and ``scenarios/`` the experiments the
``minichain sim`` commands run.
"""

from minichain.sim.engine import (
    CLIENT,
    Action,
    Broadcast,
    CancelTimer,
    Decide,
    Engine,
    EngineFactory,
    NodeContext,
    Send,
    SetTimer,
)
from minichain.sim.events import EventQueue
from minichain.sim.network import Exponential, Fixed, LogNormal, Network, NetworkStats, Uniform
from minichain.sim.simulator import Simulation, SimResult

__all__ = [
    "CLIENT", "Action", "Broadcast", "CancelTimer", "Decide", "Engine", "EngineFactory", "NodeContext",
    "Send", "SetTimer", "EventQueue", "Exponential", "Fixed", "LogNormal", "Network", "NetworkStats", "Uniform",
    "Simulation", "SimResult",
]
