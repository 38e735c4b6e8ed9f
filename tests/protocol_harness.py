"""Drive the sans-IO peer protocol (node/protocol.py) in tests: no sockets, no clock.

``Harness`` is one protocol over the real node's full-validation chain (chain state and
mempool on a memory store); ``handshake`` brings a scripted peer to ready, and
``sends`` / ``reports`` pick effects out of what a call returned.
"""

from __future__ import annotations

from minichain import params as chain_params
from minichain.chainstate import ChainState, Mempool
from minichain.core.genesis import genesis_block
from minichain.node import messages as m
from minichain.node.backend import NodeChain
from minichain.node.protocol import Disconnect, Misbehaved, PeerProtocol, ProtocolConfig, Send
from minichain.store.memory import MemoryStore
from tests.chainbuilder import NOW

P = chain_params.regtest
GENESIS = genesis_block(P).hash


class Harness:
    def __init__(self, config: ProtocolConfig | None = None, nonce: int = 1) -> None:
        self.state = ChainState(MemoryStore(), P)
        self.mempool = Mempool(P)
        self.chain = NodeChain(self.state, self.mempool)
        self.protocol = PeerProtocol(self.chain, genesis_hash=GENESIS, nonce=nonce, user_agent="/test/",
                                     network="regtest", config=config or ProtocolConfig(discover=False))
        self.now = float(NOW)
        self._ids: dict = {}     # peer -> a small number of its own (its port and nonce)

    @property
    def tree(self):
        return self.state.tree

    def _id(self, peer) -> int:
        # Distinct per peer and the same in every run (``hash`` of a str is salted per
        # process: two peers' nonces collided now and then, and one was "already connected").
        return self._ids.setdefault(peer, len(self._ids))

    def connect(self, peer, *, inbound=True, port=None):
        return self.protocol.connected(peer, inbound=inbound, host="127.0.0.1", port=port or 40000 + self._id(peer),
                                       now=self.now)

    def handshake(self, peer, *, listen_port=0, nonce=None, inbound=True):
        """Connect ``peer`` and play its side of the handshake; returns all effects."""
        out = self.connect(peer, inbound=inbound)
        out += self.receive(peer, m.Version(m.PROTOCOL_VERSION, GENESIS, 0, "/peer/", listen_port,
                                            nonce if nonce is not None else 1000 + self._id(peer)))
        out += self.receive(peer, m.Verack())
        return out

    def receive(self, peer, msg):
        return self.protocol.receive(peer, msg, self.now)

    def tick(self, seconds=0.0):
        self.now += seconds
        return self.protocol.tick(self.now)


def sends(effects, peer=None, kind=None):
    """The messages sent (to ``peer``, of class ``kind``) in ``effects``, in order."""
    return [e.msg for e in effects if isinstance(e, Send) and (peer is None or e.dst == peer)
            and (kind is None or isinstance(e.msg, kind))]


def reports(effects, kind=Misbehaved):
    return [e for e in effects if isinstance(e, kind)]


def disconnected(effects):
    return [e.peer for e in effects if isinstance(e, Disconnect)]


def requested(effects, peer=None):
    """Block hashes asked for with getdata (to ``peer``), in order."""
    return [h for msg in sends(effects, peer, m.GetData) for kind, h in msg.items if kind == m.INV_BLOCK]
