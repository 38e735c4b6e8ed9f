"""The peer protocol (node/protocol.py) as a state machine: a message in, effects out.

In the style of etcd-raft's tests: no sockets, no event loop, no clock. Each test plays
scripted peers against one protocol over the real node's chain state (memory store)
and checks exactly what it sends, requests, scores and bans.
"""

import pytest

from minichain.node import messages as m
from minichain.node.protocol import (
    BAN_SCORE,
    MAX_UNCONNECTING_HEADERS,
    Dial,
    Misbehavior,
    PeerReady,
    ProtocolConfig,
)
from tests.chainbuilder import ChainBuilder
from tests.protocol_harness import GENESIS, Harness, disconnected, reports, requested, sends


@pytest.fixture
def cb():
    return ChainBuilder()


def ready(h: Harness, *peers):
    for p in peers:
        out = h.handshake(p)
        assert reports(out, PeerReady), f"{p} did not become ready: {out}"
    return h


# -- handshake ----------------------------------------------------------------------------------


def test_we_speak_first_on_links_we_dialled_and_wait_on_inbound_ones():
    h = Harness()
    out = h.connect("out", inbound=False)
    [version] = sends(out, "out")
    assert isinstance(version, m.Version) and version.genesis == GENESIS and version.nonce == 1
    assert h.connect("in", inbound=True) == []


def test_handshake_answers_version_then_asks_for_headers_and_addresses():
    h = Harness()
    out = h.handshake("a")
    kinds = [type(msg) for msg in sends(out, "a")]
    assert kinds == [m.Version, m.Verack, m.GetHeaders, m.GetAddr]
    assert [r.peer for r in reports(out, PeerReady)] == ["a"]
    # The sync starts at the best header's parent (here genesis, which has none: itself).
    assert sends(out, "a", m.GetHeaders)[0].locator == [GENESIS]


def test_a_peer_on_another_network_is_rejected_with_the_reason():
    h = Harness()
    h.connect("x")
    out = h.receive("x", m.Version(1, b"\x07" * 32, 0, "/other/", 0, 5))
    [reject] = sends(out, "x", m.Reject)
    assert "wrong network" in reject.reason and "regtest" in reject.reason
    assert disconnected(out) == ["x"] and not h.protocol.peers["x"].ready


def test_connecting_to_ourselves_is_noticed_by_the_nonce():
    h = Harness(nonce=77)
    h.connect("me", inbound=False)
    out = h.receive("me", m.Version(1, GENESIS, 0, "/me/", 0, 77))
    assert sends(out, "me", m.Reject)[0].reason == "connected to self" and disconnected(out) == ["me"]


def test_anything_but_the_handshake_before_it_bans_the_peer():
    h = Harness()
    h.connect("early")
    out = h.receive("early", m.GetHeaders([GENESIS]))
    [mis] = reports(out)
    assert mis.reason is Misbehavior.BEFORE_HANDSHAKE and mis.score == 100 and mis.banned
    assert "banned" in sends(out, "early", m.Reject)[0].reason and disconnected(out) == ["early"]
    # What a closed link still delivers is ignored, not scored again.
    assert h.receive("early", m.GetHeaders([GENESIS])) == []


def test_a_banned_address_is_refused_at_its_next_handshake():
    h = Harness()
    h.handshake("bad", listen_port=18444)
    h.receive("bad", m.Version(1, GENESIS, 0, "/again/", 18444, 9))   # a second version: 100
    assert h.protocol.is_banned("127.0.0.1", 18444, h.now)
    h.protocol.disconnected("bad", h.now)
    h.connect("bad2")
    out = h.receive("bad2", m.Version(1, GENESIS, 0, "/bad/", 18444, 10))
    assert sends(out, "bad2", m.Reject)[0].reason == "banned"
    # ... until the ban expires.
    h.now += h.protocol.config.ban_seconds + 1
    assert not h.protocol.is_banned("127.0.0.1", 18444, h.now)


# -- headers-first sync -----------------------------------------------------------------------


def test_headers_lead_to_one_getdata_for_the_missing_blocks_and_no_second_request(cb):
    h = ready(Harness(), "a", "b")
    blocks = cb.chain(None, 3)
    out = h.receive("a", m.Headers([b.header for b in blocks]))
    assert requested(out, "a") == [b.hash for b in blocks]
    # Another peer announcing the same chain is not asked again: one peer per block.
    out = h.receive("b", m.Headers([b.header for b in blocks]))
    assert requested(out) == []
    for b in blocks:
        h.receive("a", m.BlockMessage(b))
    assert h.tree.tip.hash == blocks[-1].hash
    assert h.protocol.in_flight == {}


def test_in_flight_blocks_per_peer_are_capped(cb):
    h = ready(Harness(ProtocolConfig(discover=False, max_in_flight=4)), "a")
    blocks = cb.chain(None, 10)
    out = h.receive("a", m.Headers([b.header for b in blocks]))
    assert requested(out, "a") == [b.hash for b in blocks[:4]]
    # Each delivered block makes room for the next.
    out = h.receive("a", m.BlockMessage(blocks[0]))
    assert requested(out, "a") == [blocks[4].hash]


def test_a_new_tip_is_announced_with_its_header_to_every_peer_but_its_source(cb):
    h = ready(Harness(), "a", "b", "c")
    [b1] = cb.chain(None, 1)
    h.receive("a", m.Headers([b1.header]))
    out = h.receive("a", m.BlockMessage(b1))
    assert sends(out, "a") == []
    for peer in ("b", "c"):
        [ann] = sends(out, peer)
        assert isinstance(ann, m.Headers) and [x.hash for x in ann.headers] == [b1.hash]
    # A peer that told us it has the next block is not told about it.
    [b2] = cb.chain(b1, 1)
    h.receive("b", m.Headers([b2.header]))
    out = h.receive("b", m.BlockMessage(b2))
    assert sends(out, "b") == [] and len(sends(out, "a")) == 1 and len(sends(out, "c")) == 1


def test_a_long_reorganisation_is_announced_with_an_inv_of_the_new_tip(cb):
    h = ready(Harness(), "a", "b")
    short = cb.chain(None, 2)
    h.receive("a", m.Headers([b.header for b in short]))
    for b in short:
        h.receive("a", m.BlockMessage(b))
    long = cb.chain(None, 12)                     # from genesis: more work, 12 new blocks
    out = h.receive("a", m.Headers([b.header for b in long]))
    assert requested(out, "a") == [b.hash for b in long[:16]]
    out = []
    for b in reversed(long):                      # the first block last: all twelve connect at once
        out += h.receive("a", m.BlockMessage(b))
    assert h.tree.tip.hash == long[-1].hash
    # More than MAX_BLOCKS_TO_ANNOUNCE new blocks: an inv of the tip (Bitcoin Core's rule).
    [ann] = sends(out, "b")
    assert isinstance(ann, m.Inv) and ann.items == [(m.INV_BLOCK, long[-1].hash)]


def test_headers_that_do_not_connect_ask_for_the_gap_and_are_punished_only_when_repeated(cb):
    h = ready(Harness(), "a")
    blocks = cb.chain(None, 3)
    out = h.receive("a", m.Headers([blocks[2].header]))          # parent unknown
    [gh] = sends(out, "a", m.GetHeaders)
    assert gh.stop == blocks[2].hash and reports(out) == []
    for i in range(2, MAX_UNCONNECTING_HEADERS + 1):
        out = h.receive("a", m.Headers([blocks[2].header]))
    [mis] = reports(out)
    assert mis.reason is Misbehavior.UNCONNECTING_HEADERS and mis.score == 20 and not mis.banned
    # A reply that connects resets the count and fetches the blocks.
    out = h.receive("a", m.Headers([b.header for b in blocks]))
    assert requested(out, "a") == [b.hash for b in blocks]
    assert h.protocol.peers["a"].unconnecting == 0


def test_getheaders_is_answered_from_the_active_chain_only(cb):
    h = ready(Harness(), "a", "b")
    main = cb.chain(None, 4)
    side = cb.chain(main[0], 1)                   # a side branch at height 2
    h.receive("a", m.Headers([b.header for b in main]))
    for b in main:
        h.receive("a", m.BlockMessage(b))
    h.receive("a", m.Headers([side[0].header]))   # known, not active
    # A locator led by the side block: the first hash on OUR active chain is main[0].
    out = h.receive("b", m.GetHeaders([side[0].hash, main[0].hash, GENESIS]))
    [reply] = sends(out, "b", m.Headers)
    assert [x.hash for x in reply.headers] == [b.hash for b in main[1:]]
    # ``stop`` ends the answer early.
    out = h.receive("b", m.GetHeaders([GENESIS], main[1].hash))
    assert [x.hash for x in sends(out, "b", m.Headers)[0].headers] == [main[0].hash, main[1].hash]


def test_an_orphan_waits_for_its_parent_and_the_sender_is_asked_for_the_gap(cb):
    h = ready(Harness(), "a")
    b1, b2 = cb.chain(None, 2)
    out = h.receive("a", m.BlockMessage(b2))       # unsolicited, parent unknown
    assert [r.reason for r in reports(out)] == [Misbehavior.UNSOLICITED_BLOCK]
    [gh] = sends(out, "a", m.GetHeaders)
    assert gh.stop == b2.hash and h.state.has_orphan(b2.hash)
    out = h.receive("a", m.Headers([b1.header, b2.header]))
    assert requested(out, "a")[0] == b1.hash
    h.receive("a", m.BlockMessage(b1))
    assert h.tree.tip.hash == b2.hash and not h.state.has_orphan(b2.hash)


def test_an_invalid_block_bans_its_sender(cb):
    h = ready(Harness(), "a", "b")
    [good] = cb.chain(None, 1)
    bad = cb.remine(good, txs=[good.transactions[0], good.transactions[0]])   # a duplicate coinbase
    h.receive("a", m.Headers([bad.header]))
    out = h.receive("a", m.BlockMessage(bad))
    [mis] = reports(out)
    assert mis.reason is Misbehavior.INVALID_BLOCK and mis.banned and disconnected(out) == ["a"]
    assert h.tree.tip.hash == GENESIS
    assert h.protocol.peers["b"].ready, "an honest peer is not touched"


# -- stalls and disconnections ------------------------------------------------------------------


def test_a_stalled_block_is_asked_of_another_peer_after_the_timeout(cb):
    h = ready(Harness(ProtocolConfig(discover=False, block_timeout=20.0)), "slow", "fast")
    [b1] = cb.chain(None, 1)
    out = h.receive("slow", m.Headers([b1.header]))
    assert requested(out, "slow") == [b1.hash]
    h.receive("fast", m.Headers([b1.header]))
    assert h.protocol.next_deadline() == pytest.approx(h.now + 20.0)
    assert requested(h.tick(19.0)) == []
    out = h.tick(1.0)
    assert requested(out, "fast") == [b1.hash] and requested(out, "slow") == []
    # If the second peer stalls too, the first is asked again once its own pause is over.
    assert requested(h.tick(19.0)) == []
    out = h.tick(1.0)
    assert requested(out, "slow") == [b1.hash]
    h.receive("fast", m.BlockMessage(b1))
    assert h.tree.tip.hash == b1.hash


def test_a_disconnected_peers_requests_go_to_the_others_at_once(cb):
    h = ready(Harness(), "a", "b")
    blocks = cb.chain(None, 2)
    h.receive("a", m.Headers([b.header for b in blocks]))
    h.receive("b", m.Headers([b.header for b in blocks]))
    out = h.protocol.disconnected("a", h.now)
    assert requested(out, "b") == [b.hash for b in blocks]


def test_a_handshake_that_never_completes_times_out():
    h = Harness(ProtocolConfig(discover=False, handshake_timeout=10.0))
    h.connect("mute")
    assert disconnected(h.tick(9.0)) == []
    out = h.tick(1.0)
    assert disconnected(out) == ["mute"] and "handshake timed out" in sends(out, "mute", m.Reject)[0].reason


# -- scores ----------------------------------------------------------------------------------


def test_small_offences_fade_a_burst_of_them_bans(cb):
    h = ready(Harness(), "a")
    blocks = cb.chain(None, 12)
    scores = []
    for b in blocks[1:]:                           # unsolicited: 10 each
        out = h.receive("a", m.BlockMessage(b))
        scores += [r.score for r in reports(out)]
        if disconnected(out):
            break
    assert scores[:10] == list(range(10, 101, 10)) and reports(out)[-1].banned
    # A trickle of the same offence, one every 20 seconds, never reaches the threshold.
    h2 = ready(Harness(), "b")
    for b in blocks[1:]:
        h2.now += 20.0
        out = h2.receive("b", m.BlockMessage(b))
        assert not disconnected(out)
    assert h2.protocol.peers["b"].current_score(h2.now) < BAN_SCORE


# -- addresses and transactions ----------------------------------------------------------------


def test_addresses_are_learned_and_dialled_one_per_tick_up_to_the_outbound_limit():
    h = Harness(ProtocolConfig(discover=True, max_outbound=2))
    ready(h, "a")
    out = h.receive("a", m.Addr([("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)]))
    assert [d for d in out if isinstance(d, Dial)] == []          # an addr message dials nothing itself

    def dials(out):
        return [d.addr for d in out if isinstance(d, Dial)]

    assert dials(h.tick(1.0)) == [("127.0.0.1", 7001)]
    assert dials(h.tick(1.0)) == [("127.0.0.1", 7002)]
    assert dials(h.tick(1.0)) == []                                # two attempts under way: the limit
    # A failed attempt frees its slot; the address waits out its backoff, another is tried.
    h.protocol.dial_ended(("127.0.0.1", 7001), False, h.now)
    assert dials(h.tick(1.0)) == [("127.0.0.1", 7003)]
    out = h.receive("a", m.GetAddr())
    [addr] = sends(out, "a", m.Addr)
    assert ("127.0.0.1", 7003) in addr.addrs
    assert h.receive("a", m.GetAddr()) == []                       # answered once per link


def test_an_address_that_keeps_failing_is_forgotten_and_retries_back_off():
    h = Harness(ProtocolConfig(discover=True, max_outbound=1))
    ready(h, "a")
    h.receive("a", m.Addr([("127.0.0.1", 7001)]))
    attempts = []
    for _ in range(400):
        for d in h.tick(1.0):
            if isinstance(d, Dial):
                attempts.append(h.now)
                h.protocol.dial_ended(d.addr, False, h.now)
    # Tried, then again after 60 s, then after 120 s more: three failures and it is gone.
    assert [t - attempts[0] for t in attempts] == [0.0, 60.0, 180.0]
    assert ("127.0.0.1", 7001) not in h.protocol.addresses


def test_only_ip_literals_with_a_port_are_learned():
    h = Harness()
    ready(h, "a")
    bad = [("evil.example/inject-path?x=", 80), ("127.0.0.1", 0), ("127.0.0.1/p2p", 8333), ("::ffff:1.2.3.4x", 1),
           ("0.0.0.0", 8333), ("", 8333)]
    h.receive("a", m.Addr(bad + [("10.1.2.3", 8333), ("::1", 9000)]))
    assert set(h.protocol.addresses) >= {("10.1.2.3", 8333), ("::1", 9000)}
    assert not any(a in h.protocol.addresses for a in bad)


def test_an_addr_flood_is_cut_by_the_token_bucket_and_scored():
    h = Harness()
    ready(h, "a")
    book = [("10.0.%d.%d" % (i // 250, i % 250), 8333) for i in range(1000)]
    out = h.receive("a", m.Addr(book))                              # the burst: all learned
    assert reports(out) == [] and len(h.protocol.addresses) == 1000
    out = h.receive("a", m.Addr([("10.9.9.9", 8333)]))              # nothing left in the bucket
    [mis] = reports(out)
    assert mis.reason is Misbehavior.ADDR_FLOOD and mis.score == 5
    assert ("10.9.9.9", 8333) not in h.protocol.addresses
    # Empty addr messages cost a token each: 700 of them end in a ban, not a frozen node.
    banned = False
    for _ in range(700):
        out = h.receive("a", m.Addr([]))
        if disconnected(out):
            banned = True
            break
    assert banned and h.protocol.is_banned("127.0.0.1", h.protocol.peers["a"].port, h.now)


def test_the_address_book_is_capped():
    h = Harness(ProtocolConfig(discover=False, max_addresses=50))
    ready(h, "a")
    h.receive("a", m.Addr([("10.0.0.%d" % i, 8333) for i in range(1, 200)]))
    assert len(h.protocol.addresses) == 50


def test_a_transaction_is_fetched_admitted_and_announced_to_the_others(cb):
    h = ready(Harness(), "a", "b")
    blocks = cb.chain(None, 101)                   # a mature coinbase to spend
    h.receive("a", m.Headers([b.header for b in blocks]))
    for b in blocks:
        h.receive("a", m.BlockMessage(b))
    [tx] = cb.random_txs(blocks[-1].hash, 1)
    out = h.receive("a", m.Inv([(m.INV_TX, tx.txid)]))
    assert sends(out, "a", m.GetData)[0].items == [(m.INV_TX, tx.txid)]
    out = h.receive("a", m.TxMessage(tx))
    assert tx.txid in h.mempool
    assert sends(out, "b", m.Inv)[0].items == [(m.INV_TX, tx.txid)] and sends(out, "a") == []
    # Served on request, and a miss is a notfound.
    out = h.receive("b", m.GetData([(m.INV_TX, tx.txid), (m.INV_TX, b"\x01" * 32)]))
    assert sends(out, "b", m.TxMessage)[0].tx.txid == tx.txid
    assert sends(out, "b", m.NotFound)[0].items == [(m.INV_TX, b"\x01" * 32)]


def test_a_long_sync_asks_within_a_window_of_the_last_common_block(cb):
    from minichain.node.protocol import BLOCK_DOWNLOAD_WINDOW

    h = ready(Harness(ProtocolConfig(discover=False, max_in_flight=5000)), "a")
    blocks = cb.chain(None, BLOCK_DOWNLOAD_WINDOW + 200)
    out = h.receive("a", m.Headers([b.header for b in blocks]))
    # One getdata holds at most MAX_INV_ITEMS; the next round fills the window, no further:
    # blocks 1..1024 (the last block both have is genesis).
    assert requested(out, "a") == [b.hash for b in blocks[:m.MAX_INV_ITEMS]]
    assert requested(h.tick(1.0), "a") == [b.hash for b in blocks[m.MAX_INV_ITEMS:BLOCK_DOWNLOAD_WINDOW]]
    assert requested(h.tick(1.0), "a") == []
    # As the first blocks arrive and connect, the window slides and the rest is asked for.
    later = []
    for b in blocks[:300]:
        later += h.receive("a", m.BlockMessage(b))
    assert h.tree.tip.hash == blocks[299].hash
    assert requested(later, "a") == [b.hash for b in blocks[BLOCK_DOWNLOAD_WINDOW:]]


# -- budgets, floods and penalties (the table in protocol.py's docstring) ------------------------


def synced(h: Harness, cb, n: int, peer="a"):
    blocks = cb.chain(None, n)
    for i in range(0, n, m.MAX_HEADERS):
        h.receive(peer, m.Headers([b.header for b in blocks[i:i + m.MAX_HEADERS]]))
    for b in blocks:
        h.receive(peer, m.BlockMessage(b))
    assert h.tree.tip.hash == blocks[-1].hash
    return blocks


def test_getdata_is_served_a_budget_at_a_time_and_resumed_when_the_host_has_drained(cb):
    h = ready(Harness(ProtocolConfig(discover=False, serve_bytes=1)), "a", "leech")
    blocks = synced(h, cb, 5)
    out = h.receive("leech", m.GetData([(m.INV_BLOCK, b.hash) for b in blocks]))
    # One block per call with a one-byte budget; the rest waits for the host.
    [first] = sends(out, "leech")
    assert isinstance(first, m.StoredBlock) and first.hash == blocks[0].hash
    assert m.decode(m.encode(first)).block == blocks[0]          # the stored bytes are the block
    assert h.protocol.pending_getdata("leech") == 4
    served = [first.hash]
    while h.protocol.pending_getdata("leech"):
        served += [msg.hash for msg in sends(h.protocol.resume("leech", h.now), "leech")]
    assert served == [b.hash for b in blocks]
    assert h.protocol.resume("leech", h.now) == []


def test_getdata_duplicates_are_dropped_and_excess_is_refused_and_scored(cb):
    from minichain.node.protocol import MAX_GETDATA_QUEUE

    h = ready(Harness(ProtocolConfig(discover=False, serve_bytes=1)), "a", "leech")
    [b1] = synced(h, cb, 1)
    h.receive("leech", m.GetData([(m.INV_BLOCK, b1.hash), (m.INV_BLOCK, b1.hash)]))
    assert h.protocol.pending_getdata("leech") == 0                # the duplicate never queued
    # Fill the queue with requests waiting behind one another.
    items = [(m.INV_TX, bytes([i % 256, i // 256]) * 16) for i in range(m.MAX_INV_ITEMS)]
    h.protocol.peers["leech"].getdata.extend([(m.INV_BLOCK, b1.hash)])   # something still waiting
    h.protocol.peers["leech"].getdata_set.add((m.INV_BLOCK, b1.hash))
    out = h.receive("leech", m.GetData(items))
    out += h.receive("leech", m.GetData(items[:10]))               # all duplicates of waiting items
    assert [r.reason for r in reports(out)] == [Misbehavior.GETDATA_EXCESS]
    assert h.protocol.pending_getdata("leech") <= MAX_GETDATA_QUEUE


def test_getdata_for_unknown_items_at_flood_rate_is_scored_then_banned():
    h = ready(Harness(), "a")
    out = []
    for i in range(30):
        out += h.receive("a", m.GetData([(m.INV_TX, bytes([i, j % 256, j // 256]) + b"\0" * 29) for j in range(1000)]))
        if disconnected(out):
            break
    codes = [r.reason for r in reports(out)]
    assert codes and set(codes) == {Misbehavior.GETDATA_UNKNOWN_FLOOD} and reports(out)[-1].banned
    assert sum(len(msg.items) for msg in sends(out, "a", m.NotFound)) < 1000 + 100 * 0 + 1   # the burst, then nothing


def test_an_inv_flood_of_random_tx_hashes_is_bounded_scored_and_banned():
    from minichain.node.protocol import MAX_TX_ANNOUNCEMENTS, MAX_TX_IN_FLIGHT

    h = ready(Harness(), "a")
    state = h.protocol.peers["a"]
    out = []
    for i in range(1000):
        out += h.receive("a", m.Inv([(m.INV_TX, i.to_bytes(4, "little") + j.to_bytes(2, "little") * 14)
                                     for j in range(1000)]))
        assert len(state.requested_tx) <= MAX_TX_IN_FLIGHT and len(state.pending_tx) <= MAX_TX_ANNOUNCEMENTS
        if disconnected(out):
            break
    assert i < 20, "the flood went on"
    assert {r.reason for r in reports(out)} == {Misbehavior.INV_FLOOD} and reports(out)[-1].banned
    assert sum(len(msg.items) for msg in sends(out, "a", m.GetData)) == MAX_TX_IN_FLIGHT


def test_unanswered_tx_requests_expire_and_the_next_announced_are_asked(cb):
    from minichain.node.protocol import MAX_TX_IN_FLIGHT, TX_REQUEST_TIMEOUT

    h = ready(Harness(), "a")
    txids = [bytes([i, 7]) * 16 for i in range(MAX_TX_IN_FLIGHT + 5)]
    out = h.receive("a", m.Inv([(m.INV_TX, t) for t in txids]))
    assert [it[1] for msg in sends(out, "a", m.GetData) for it in msg.items] == txids[:MAX_TX_IN_FLIGHT]
    out = h.tick(TX_REQUEST_TIMEOUT)
    assert [it[1] for msg in sends(out, "a", m.GetData) for it in msg.items] == txids[MAX_TX_IN_FLIGHT:]


def test_a_header_too_far_in_the_future_is_neither_stored_nor_punished(cb):
    h = ready(Harness(), "a")
    [b1] = cb.chain(None, 1)
    future = cb.remine(b1, time=int(h.now) + 3 * 3600)
    out = h.receive("a", m.Headers([future.header]))
    assert reports(out) == [] and disconnected(out) == []
    assert future.hash not in h.tree.entries and requested(out) == []
    out = h.receive("a", m.BlockMessage(future))                 # nor the block (unsolicited: +10 only)
    assert [r.reason for r in reports(out)] == [Misbehavior.UNSOLICITED_BLOCK]
    assert future.hash not in h.tree.entries or not h.tree.entries[future.hash].status.failed


def _siblings(cb, parent, n, start=0):
    """``n`` headers on ``parent``, all different (a low-work fan of forks)."""
    from tests.chainbuilder import mine
    from minichain.core.block import BlockHeader

    return [mine(BlockHeader(1, parent.hash, bytes([i % 256, (i >> 8) % 256, i >> 16]) + b"\x09" * 29,
                             parent.time + 1, parent.bits, 0), cb.params) for i in range(start, start + n)]


def test_low_work_headers_are_not_stored_and_their_sender_is_scored(cb):
    from minichain.node.protocol import LOW_WORK_MARGIN

    h = ready(Harness(), "a", "spam")
    blocks = synced(h, cb, LOW_WORK_MARGIN + 20)
    before = len(h.tree.entries)
    # A short branch forking from genesis: 19 blocks of work below what a new branch needs.
    fork = cb.chain(None, 3)
    out = h.receive("spam", m.Headers([b.header for b in fork]))
    [mis] = reports(out)
    assert mis.reason is Misbehavior.LOW_WORK_HEADERS and mis.score == 20
    assert len(h.tree.entries) == before and requested(out) == []
    # A fork within the margin is a normal fork: stored.
    near = cb.chain(blocks[30], 1)
    out = h.receive("spam", m.Headers([near[0].header]))
    assert reports(out) == [] and near[0].hash in h.tree.entries


def test_a_long_heavier_branch_is_held_until_it_has_the_work_then_stored(cb):
    from minichain.node.protocol import LOW_WORK_MARGIN

    h = ready(Harness(ProtocolConfig(discover=False, max_in_flight=16)), "a", "b")
    ours = synced(h, cb, LOW_WORK_MARGIN + 2100)                  # more than a message of headers past the margin
    theirs = cb.chain(None, len(ours) + 1)                         # from genesis, one block heavier
    out = h.receive("b", m.Headers([b.header for b in theirs[:m.MAX_HEADERS]]))
    # Not enough work yet: held, not stored, not scored; the rest is asked for.
    assert reports(out) == [] and theirs[0].hash not in h.tree.entries
    [gh] = sends(out, "b", m.GetHeaders)
    assert gh.locator == [theirs[m.MAX_HEADERS - 1].hash]
    out = h.receive("b", m.Headers([b.header for b in theirs[m.MAX_HEADERS:]]))
    assert reports(out) == []
    assert all(b.hash in h.tree.entries for b in theirs)
    assert requested(out, "b") == [b.hash for b in theirs[:16]]


def test_200000_low_work_headers_store_nothing_and_ban_the_sender(cb):
    h = ready(Harness(), "a", "spam")
    synced(h, cb, 200)
    before = len(h.tree.entries)
    g = cb.genesis.header
    out = []
    sent = 0
    while sent < 200_000 and not disconnected(out):
        fan = _siblings(cb, g, m.MAX_HEADERS, sent) if sent < 2 * m.MAX_HEADERS * 3 else fan
        out += h.receive("spam", m.Headers(fan))
        sent += m.MAX_HEADERS
    assert disconnected(out) == ["spam"] and reports(out)[-1].banned
    assert len(h.tree.entries) == before
    assert h.protocol.peers["a"].ready


def test_headers_that_do_not_form_a_chain_are_scored(cb):
    h = ready(Harness(), "a")
    b1, b2, b3 = cb.chain(None, 3)
    out = h.receive("a", m.Headers([b1.header, b3.header]))
    assert [r.reason for r in reports(out)] == [Misbehavior.NONCONTINUOUS_HEADERS]


def test_eviction_spares_useful_peers_and_picks_the_youngest_idle_one(cb):
    h = Harness()
    for p in ("giver", "idle1", "idle2"):
        ready(h, p)
        h.now += 1
    blocks = cb.chain(None, 1)
    h.receive("giver", m.Headers([blocks[0].header]))
    h.receive("giver", m.BlockMessage(blocks[0]))
    assert h.protocol.eviction_candidate(h.now) == "idle2"
    h.connect("half")                                              # no handshake yet: first to go
    assert h.protocol.eviction_candidate(h.now) == "half"
    h.protocol.disconnected("half", h.now)
    h.protocol.disconnected("idle1", h.now)
    h.protocol.disconnected("idle2", h.now)
    assert h.protocol.eviction_candidate(h.now) is None            # only the useful peer is left


def test_memory_held_for_a_peer_goes_with_it(cb):
    import gc
    import weakref

    h = ready(Harness(ProtocolConfig(discover=False, serve_bytes=1)), "a", "b")
    blocks = synced(h, cb, 3)
    h.receive("b", m.GetData([(m.INV_BLOCK, x.hash) for x in blocks]))       # two still queued
    h.receive("b", m.Inv([(m.INV_TX, bytes([i]) * 32) for i in range(200)]))  # 100 asked, 100 pending
    nxt = cb.chain(blocks[-1], 1)
    h.receive("b", m.Headers([nxt[0].header]))                                 # a block in flight from b
    state = weakref.ref(h.protocol.peers["b"])
    assert state().getdata and state().pending_tx and state().requested
    h.protocol.disconnected("b", h.now)
    gc.collect()
    assert state() is None, "the protocol still holds the peer's state"


def test_a_peer_that_keeps_starting_new_low_work_branches_is_banned(cb):
    from minichain.node.protocol import LOW_WORK_MARGIN

    h = ready(Harness(), "a", "spam")
    synced(h, cb, LOW_WORK_MARGIN + m.MAX_HEADERS + 10)
    before = len(h.tree.entries)
    g = cb.genesis.header
    out = []
    for i in range(10):
        branch = [_siblings(cb, g, 1, 10_000 * i)[0]]
        while len(branch) < m.MAX_HEADERS:
            branch.append(_siblings(cb, branch[-1], 1, 10_000 * i + len(branch))[0])
        out += h.receive("spam", m.Headers(branch))
        if disconnected(out):
            break
    # The first branch is held (it might go on), each new one abandons the last: +20 each.
    assert [r.reason for r in reports(out)] == [Misbehavior.LOW_WORK_HEADERS] * 5 and reports(out)[-1].banned
    assert len(h.tree.entries) == before


def test_our_own_transactions_go_out_as_one_inv_per_peer_leaving_out_what_a_peer_has():
    """relay_txs: what the node's API admitted in one relay tick, one inv per peer (in
    chunks of MAX_INV_ITEMS), without the transactions a peer is known to have."""
    h = Harness()
    h.handshake("a")
    h.handshake("b", inbound=False)
    h.connect("c")  # no handshake: not ready, told nothing
    txids = [bytes([i % 256, i // 256]) * 16 for i in range(m.MAX_INV_ITEMS + 5)]

    class Tx:
        def __init__(self, txid):
            self.txid = txid

    h.receive("a", m.Inv([(m.INV_TX, txids[0])]))  # "a" announced the first one: it has it
    out = h.protocol.relay_txs([Tx(t) for t in txids])
    to_a, to_b = sends(out, "a", m.Inv), sends(out, "b", m.Inv)
    assert [len(msg.items) for msg in to_a] == [m.MAX_INV_ITEMS, 4]
    assert [len(msg.items) for msg in to_b] == [m.MAX_INV_ITEMS, 5]
    assert [h_ for msg in to_b for _, h_ in msg.items] == txids
    assert [h_ for msg in to_a for _, h_ in msg.items] == txids[1:]
    assert sends(out, "c") == []
    assert h.protocol.relay_txs([Tx(t) for t in txids]) == []  # now everyone knows them all
