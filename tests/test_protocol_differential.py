"""One protocol, two worlds: the real node and a simulated node decide the same things.

The same script of peer messages -- headers, blocks out of order, an inv of an unknown
block, a reorganisation, an orphan arriving before its parent, a peer that stalls, an
invalid block -- is played to

* the real :class:`~minichain.node.node.Node` (in-process, memory store), through its IO
  shell: the protocol's effects are carried out by ``Node._execute`` on recording peers;
* a simulated :class:`~minichain.sim.engines.nakamoto.NakamotoNode` hosting the same
  protocol over the node's full-validation chain (``NodeChain`` on a memory store), fed
  through the simulator's engine interface (``on_message`` / ``on_timer``).

Both must end on the same tips after every step, send the same requests and
announcements to the same peers, and score and ban the same peers for the same reasons.
"""

from __future__ import annotations

import random

import pytest

from minichain import params as chain_params
from minichain.chainstate import ChainState, Mempool
from minichain.core.genesis import genesis_block
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from minichain.node import messages as m
from minichain.node.backend import NodeChain
from minichain.node.node import Node, NodeConfig
from minichain.node.protocol import ProtocolConfig
from minichain.sim.engine import NodeContext, Send
from minichain.sim.engines.nakamoto import TICK, NakamotoNode, SimBlock, World
from minichain.store.memory import MemoryStore
from tests.chainbuilder import SIGN_BACKEND, ChainBuilder

P = chain_params.regtest
GENESIS = genesis_block(P)
T0 = GENESIS.header.time          # both worlds' clocks start at the genesis block's time
PEERS = (1, 2, 3)


def summary(msg) -> tuple:
    """What a sent message says, comparable across the two worlds."""
    if isinstance(msg, (m.GetData, m.Inv, m.NotFound)):
        return (msg.NAME, tuple(msg.items))
    if isinstance(msg, m.GetHeaders):
        return (msg.NAME, msg.locator[0], msg.stop)
    if isinstance(msg, m.Headers):
        return (msg.NAME, tuple(h.hash for h in msg.headers))
    if isinstance(msg, m.BlockMessage):
        return (msg.NAME, msg.block.hash)
    if isinstance(msg, m.Reject):
        return (msg.NAME, msg.reason)
    return (msg.NAME,)


# -- the real node's side ---------------------------------------------------------------------


class RecordingPeer:
    """Stands in for node.peer.Peer: what the node's shell sends and closes is recorded."""

    def __init__(self, ident: int, trace: list) -> None:
        self.ident = ident
        self.trace = trace
        self.inbound = True
        self.host, self.port = "127.0.0.1", 40000 + ident
        self.dialled = None
        self.state = None
        self.closed = False

    @property
    def name(self) -> str:
        return f"peer{self.ident}"

    def send(self, msg) -> None:
        if not self.closed:
            self.trace.append((self.ident, summary(msg)))

    def close(self, reason: str = "") -> None:
        self.closed = True


class RealWorld:
    def __init__(self, tmp_path) -> None:
        self.node = Node(NodeConfig(params=P, datadir=str(tmp_path), api=None, discover=False, store="memory"))
        self.trace: list = []
        self.peers = {i: RecordingPeer(i, self.trace) for i in PEERS}
        for i, peer in self.peers.items():
            protocol = self.node.protocol
            protocol.connected(peer, inbound=True, host=peer.host, port=peer.port, now=T0)
            peer.state = protocol.peers[peer]
            protocol.receive(peer, m.Version(m.PROTOCOL_VERSION, GENESIS.hash, 0, "/p/", 0, 100 + i), T0)
            protocol.receive(peer, m.Verack(), T0)     # the handshake's own messages are not compared

    def deliver(self, t: float, src: int, msg) -> None:
        self.node._execute(self.node.protocol.receive(self.peers[src], msg, T0 + t))

    def tick(self, t: float) -> None:
        self.node._execute(self.node.protocol.tick(T0 + t))

    def tip(self) -> bytes:
        return self.node.chain.tip.hash


# -- the simulated node's side ----------------------------------------------------------------


class SimWorld:
    def __init__(self) -> None:
        self.t = 0.0
        world = World(genesis=SimBlock(GENESIS.header, (), -1, 0, GENESIS.size, 0.0), params=P)
        chain = NodeChain(ChainState(MemoryStore(), P), Mempool(P))
        ctx = NodeContext(0, 4, random.Random(0), lambda: self.t)
        # The real node's protocol settings (a simulated node's default timeout is one block interval).
        self.node = NakamotoNode(ctx, world, peers=PEERS, chain=chain, config=ProtocolConfig(discover=False))
        self.node.on_start()
        self.trace: list = []

    def _record(self, actions) -> None:
        for a in actions:
            if isinstance(a, Send):
                self.trace.append((a.dst, summary(a.msg)))

    def deliver(self, t: float, src: int, msg) -> None:
        self.t = t
        self._record(self.node.on_message(src, msg))

    def tick(self, t: float) -> None:
        self.t = t
        self._record(self.node.on_timer(TICK))

    def tip(self) -> bytes:
        return self.node.tip.hash


# -- the script --------------------------------------------------------------------------------


def script():
    cb = ChainBuilder(seed=3)
    a = cb.chain(None, 3)                        # A1..A3
    b = cb.chain(a[0], 4)                        # B2..B5 on A1: heavier than A
    c = cb.chain(b[-1], 2)                       # C6, C7 on B5
    [d] = cb.chain(c[-1], 1)                     # D8
    bad_tx = sign_inputs(Transaction(1, (TxIn(OutPoint(b"\x42" * 32, 0)),), (TxOut(5, cb.pkh(1)),), 0),
                         [cb.keys[0]], backend=SIGN_BACKEND)
    bad = cb.block(d, [bad_tx], coinbase_value=1, register=False)   # spends an output that does not exist
    H = lambda blocks: m.Headers([x.header for x in blocks])        # noqa: E731
    B = m.BlockMessage
    steps = [
        (1, 1, H(a)),                            # headers first: getdata A1..A3 from peer 1
        (2, 1, B(a[0])), (2, 1, B(a[1])), (2, 1, B(a[2])),
        (3, 2, m.Inv([(m.INV_BLOCK, b[-1].hash)])),   # an unknown block: getheaders to peer 2
        (4, 2, H(b)),                            # a heavier branch: getdata B2..B5
        (5, 2, B(b[1])), (5, 2, B(b[0])),        # out of order; A3 keeps the tie
        (6, 2, B(b[3])), (6, 2, B(b[2])),        # B5 wins: a reorganisation, announced
        (7, 3, B(c[1])),                         # an orphan before its parent: unsolicited, getheaders
        (8, 3, H(c)),
        (9, 3, B(c[0])),                         # parent arrives: C6 and the pooled C7 connect
        (10, 3, H([d])), (10, 1, H([d])),        # asked of peer 3 only ...
        ("tick", 20),                            # ... which stalls: nothing yet
        ("tick", 31),                            # past the timeout: asked of peer 1
        (32, 1, B(d)),
        (33, 2, H([bad])), (34, 2, B(bad)),      # an invalid block: peer 2 banned
        (35, 2, H([bad])),                       # a banned, closed link is not heard
        (36, 1, m.GetHeaders([a[0].hash, GENESIS.hash])),   # answered from the active chain
        (37, 1, m.GetData([(m.INV_BLOCK, d.hash), (m.INV_BLOCK, a[1].hash), (m.INV_BLOCK, b"\x05" * 32)])),
    ]
    return steps, {"a": a, "b": b, "c": c, "d": d, "bad": bad}


def play(world, steps):
    tips = []
    for step in steps:
        if step[0] == "tick":
            world.tick(step[1])
        else:
            t, src, msg = step
            world.deliver(t, src, msg)
        tips.append(world.tip())
    return tips


def test_the_real_node_and_a_simulated_node_decide_the_same(tmp_path):
    steps, blocks = script()
    real = RealWorld(tmp_path)
    misbehaved_real: list = []
    # Record the real node's reports where its shell logs them.
    orig = real.node._execute

    def execute(effects):
        effects = list(effects)
        for e in effects:
            if type(e).__name__ == "Misbehaved":
                misbehaved_real.append((e.peer.ident, e.reason.code, e.score, e.banned))
        orig(effects)

    real.node._execute = execute
    sim = SimWorld()
    tips_real = play(real, steps)
    tips_sim = play(sim, steps)

    assert tips_real == tips_sim
    assert real.trace == sim.trace
    assert misbehaved_real == [(p, code, score, banned) for _, p, code, score, banned in sim.node.misbehaved]

    # And what they decided is what the script says a node should decide.
    a, b, c, d = blocks["a"], blocks["b"], blocks["c"], blocks["d"]
    assert tips_real[3] == a[2].hash                       # A3 after the first blocks
    assert tips_real[7] == a[2].hash                       # B2, B3: a tie keeps the first seen
    assert tips_real[9] == b[3].hash                       # B5: reorganised
    assert tips_real[-1] == d.hash and real.node.chain.tip.hash == d.hash
    assert misbehaved_real == [(3, "unsolicited-block", 10, False), (2, "invalid-block", 100, True)]
    requests = [(p, s[1]) for p, s in real.trace if s[0] == "getdata"]
    assert requests[0] == (1, tuple((m.INV_BLOCK, x.hash) for x in a))
    asked_d = [p for p, items in requests if items == ((m.INV_BLOCK, d.hash),)]
    assert asked_d == [3, 1], "D8 is asked of the first announcer, then of the other after the stall"
    rejects = [(p, s[1]) for p, s in real.trace if s[0] == "reject"]
    assert len(rejects) == 1 and rejects[0][0] == 2 and rejects[0][1].startswith("banned: invalid block")
    assert real.node.chain.verify().ok
