"""The node as real processes on 127.0.0.1: sync, relay, restarts, reorgs and bad peers.

Named after their topology and faults, like Bitcoin Core's functional tests.
"""

from __future__ import annotations

import asyncio
import os

import aiohttp
import pytest

from minichain import params
from minichain.core.block import Block, BlockHeader
from minichain.core.genesis import genesis_block
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase, sign_inputs
from minichain.core.validation import block_subsidy
from minichain.node import messages as m
from tests.chainbuilder import assemble
from tests.e2e.harness import NodeProcess, sync_blocks, tips, wait_peers, wait_until

pytestmark = pytest.mark.slow

P = params.regtest
MINER = PrivateKey(4242)
MINER_ADDR = MINER.public_key.address(P.address_version)
BOB = PrivateKey(4343)
BOB_ADDR = BOB.public_key.address(P.address_version)


def pay(node: NodeProcess, key: PrivateKey, to: PrivateKey, amount: int, fee: int = 1000,
        avoid: set[tuple[str, int]] = frozenset()) -> Transaction:
    """Spend one mature coin of ``key`` (seen by ``node``) to ``to``, change back to ``key``."""
    info = node.get(f"/api/address/{key.public_key.address(P.address_version)}?min_conf=1")
    coins = [u for u in info["utxos"] if u["mature"] and u["height"] is not None and not u["spent_in_mempool"]
             and (u["txid"], u["vout"]) not in avoid and u["value"] >= amount + fee]
    assert coins, f"no spendable coin for {amount}: {info['utxos'][:3]}"
    coin = coins[0]
    outputs = [TxOut(amount, to.public_key.hash160())]
    change = coin["value"] - amount - fee
    if change:
        outputs.append(TxOut(change, key.public_key.hash160()))
    tx = Transaction(1, (TxIn(OutPoint(bytes.fromhex(coin["txid"])[::-1], coin["vout"])),), tuple(outputs), 0)
    return sign_inputs(tx, [key])


def submit(node: NodeProcess, tx: Transaction) -> dict:
    code, data = node.request("POST", "/api/tx", {"hex": tx.serialize().hex()})
    assert code == 200, data
    return data


def in_mempool(node: NodeProcess, txid: str) -> bool:
    return any(t["txid"] == txid for t in node.get("/api/mempool")["transactions"])


def test_line3_one_miner_all_reach_the_same_tip_and_a_payment_crosses_the_line(network):
    a = network.add("a")
    b = network.add("b", "--connect", a.address)
    c = network.add("c", "--connect", b.address)
    wait_peers(b, 2)
    a.generate(P.coinbase_maturity + 1, MINER_ADDR)
    sync_blocks([a, b, c], height=P.coinbase_maturity + 1)

    # At height 101 only the coinbases of blocks 1 and 2 have matured (maturity 100).
    funds = a.get(f"/api/address/{MINER_ADDR}")
    assert funds["confirmed"] == 2 * P.initial_subsidy
    assert funds["immature"] == (P.coinbase_maturity - 1) * P.initial_subsidy

    tx = pay(a, MINER, BOB, 7 * 10**8)
    txid = submit(a, tx)["txid"]
    wait_until(lambda: in_mempool(c, txid), 20, lambda: "tx did not reach c:" + tips([a, b, c]))
    a.generate(1, MINER_ADDR)
    sync_blocks([a, b, c])
    seen = c.get(f"/api/tx/{txid}")
    assert seen["confirmations"] == 1 and not seen["in_mempool"]
    assert c.get(f"/api/address/{BOB_ADDR}")["confirmed"] == 7 * 10**8
    assert not in_mempool(a, txid) and not in_mempool(c, txid)


def test_late_node_catches_up_200_blocks_and_restarts_resume_from_disk(network):
    a = network.add("a")
    a.generate(200, MINER_ADDR)
    b = network.add("b", "--connect", a.address)
    sync_blocks([a, b], height=200, timeout=90)

    # SIGTERM: a clean stop; the chain is on disk when it comes back.
    assert b.stop() == 0
    a.generate(5, MINER_ADDR)
    b.start("--connect", a.address)
    assert b.status()["height"] >= 200
    sync_blocks([a, b], height=205)

    # SIGKILL: no chance to clean up; LevelDB's batches still leave a consistent chain.
    b.kill()
    a.generate(5, MINER_ADDR)
    b.start("--connect", a.address)
    assert b.status()["height"] >= 205
    sync_blocks([a, b], height=210)


def test_two_halves_mine_apart_then_the_heavier_branch_wins_and_losing_txs_return(network):
    a = network.add("a")
    b = network.add("b", "--connect", a.address)
    c = network.add("c", "--connect", b.address)
    d = network.add("d", "--connect", c.address)
    wait_peers(b, 2)
    wait_peers(c, 2)
    a.generate(P.coinbase_maturity + 2, MINER_ADDR)
    sync_blocks([a, b, c, d])

    # Split between b and c: both sides refuse each other.
    b.control("partition", {"deny": [c.address]})
    c.control("partition", {"deny": [b.address]})
    wait_until(lambda: b.status()["peers"] == 1 and c.status()["peers"] == 1, 20, lambda: "no split:" + tips([a, b, c, d]))

    # Left side: a payment confirmed on what will be the losing branch.
    lost = pay(a, MINER, BOB, 3 * 10**8)
    submit(a, lost)
    a.generate(3, MINER_ADDR)
    # Right side: more blocks, hence more work (regtest blocks all weigh the same).
    d.generate(6, BOB_ADDR)
    sync_blocks([a, b], timeout=30)
    sync_blocks([c, d], timeout=30)
    left_tip, right_tip = a.status()["tip"], d.status()["tip"]
    assert left_tip != right_tip
    assert a.get(f"/api/tx/{lost.txid_hex()}")["confirmations"] == 3  # mined in the first of the 3

    b.control("partition", {"deny": []})
    c.control("partition", {"deny": []})
    tip = sync_blocks([a, b, c, d], timeout=60)
    assert tip == right_tip
    # The losing branch's payment is unconfirmed again on the nodes that had mined it.
    wait_until(lambda: in_mempool(a, lost.txid_hex()), 20, lambda: "lost tx not back in a's mempool")
    info = a.get(f"/api/tx/{lost.txid_hex()}")
    assert info["in_mempool"] and info["confirmations"] == 0
    statuses = {t["status"] for t in a.get("/api/tips")}
    assert "active" in statuses and "valid-fork" in statuses


# -- bad peers --------------------------------------------------------------------------------


async def _attack(node: NodeProcess, listen_port: int, frames: list[bytes], handshake: bool = True) -> str:
    """Connect as a peer announcing ``listen_port``, send ``frames``; return how it ended."""
    genesis = genesis_block(P).hash
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{node.p2p_port}/p2p", max_msg_size=0) as ws:
            if handshake:
                await ws.send_bytes(m.encode(m.Version(1, genesis, 0, "/attacker/", listen_port, 99)))
                await ws.send_bytes(m.encode(m.Verack()))
            for frame in frames:
                if ws.closed:
                    break
                try:
                    await ws.send_bytes(frame)
                except (ConnectionError, RuntimeError):
                    break
            reasons = []
            try:
                while True:
                    msg = await asyncio.wait_for(ws.receive(), timeout=10)
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        decoded = m.decode(msg.data)
                        if isinstance(decoded, m.Reject):
                            reasons.append(decoded.reason)
                    elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                      aiohttp.WSMsgType.ERROR):
                        break
            except asyncio.TimeoutError:
                return "still connected"
            return "closed: " + "; ".join(reasons)


def _tip_block(node: NodeProcess) -> BlockHeader:
    info = node.get(f"/api/block/{node.status()['height']}?full=0")
    return BlockHeader(info["version"], bytes.fromhex(info["previous"] or "00" * 32)[::-1],
                       bytes.fromhex(info["merkle_root"])[::-1], info["time"], int(info["bits"], 16), info["nonce"])


def _bad_blocks(node: NodeProcess) -> dict[str, list[bytes]]:
    tip = _tip_block(node)
    height = node.status()["height"] + 1
    cb = make_coinbase(height, [TxOut(block_subsidy(height, P), MINER.public_key.hash160())], extra_nonce=77)
    good = assemble(tip, [cb], P, time=tip.time + 1)
    # Bad proof of work: the same block with a nonce that misses the target.
    nonce = 0
    while True:
        bad_pow = Block(good.header.with_nonce(nonce), good.transactions)
        if int.from_bytes(bad_pow.hash, "little") > (0x7FFFFF << 232):
            break
        nonce += 1
    spend_missing = sign_inputs(Transaction(1, (TxIn(OutPoint(b"\x42" * 32, 0)),), (TxOut(5, b"\x01" * 20),), 0), [MINER])
    missing = assemble(tip, [cb, spend_missing], P, time=tip.time + 1)
    # Unsolicited blocks with proof of work whose parents nobody has: they would only
    # fill the orphan pool.
    flood = []
    for i in range(15):
        unknown_parent = BlockHeader(1, os.urandom(32), os.urandom(32), tip.time, tip.bits, 0)
        blk = assemble(unknown_parent, [make_coinbase(height + i, [TxOut(1, b"\x02" * 20)], extra_nonce=i)], P,
                       time=tip.time + 1 + i)
        flood.append(m.encode(m.BlockMessage(blk)))
    return {
        "random bytes": [os.urandom(200)],
        "truncated frame": [m.encode(m.Headers([tip]))[:-7]],
        "frame over the limit": [bytes([m.Ping.TYPE]) + b"\x00" * (m.MAX_FRAME_SIZE + 10)],
        "bad proof of work": [m.encode(m.BlockMessage(bad_pow))],
        "spends a missing output": [m.encode(m.BlockMessage(missing))],
        "unsolicited block flood": flood,
    }


def test_bad_peers_are_dropped_and_banned_while_the_node_serves_others(network):
    a = network.add("a")
    honest = network.add("honest", "--connect", a.address)
    a.generate(3, MINER_ADDR)
    sync_blocks([a, honest])
    tip_before = a.status()["tip"]
    attacks = _bad_blocks(a)
    for i, (what, frames) in enumerate(attacks.items()):
        port = 50000 + i
        outcome = asyncio.run(_attack(a, port, frames))
        assert outcome.startswith("closed"), f"{what}: {outcome}"
        bans = {b["address"] for b in a.get("/api/peers")["bans"]}
        assert f"127.0.0.1:{port}" in bans, f"{what}: not banned ({bans})"
        # Coming back with the same identity is refused.
        again = asyncio.run(_attack(a, port, []))
        assert again.startswith("closed") and "banned" in again, f"{what}: readmitted ({again})"
        assert a.status()["tip"] == tip_before, f"{what} changed the chain"
    # The honest peer never noticed.
    assert a.status()["peers"] >= 1
    a.generate(1, MINER_ADDR)
    sync_blocks([a, honest])


def test_peer_on_another_network_is_refused_with_a_reason(network):
    a = network.add("a")

    async def other_network() -> str:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{a.p2p_port}/p2p") as ws:
                await ws.send_bytes(m.encode(m.Version(1, genesis_block(params.testnet).hash, 0, "/x/", 1, 5)))
                msg = await asyncio.wait_for(ws.receive(), timeout=10)
                return m.decode(msg.data).reason

    reason = asyncio.run(other_network())
    assert "wrong network" in reason and "regtest" in reason


def test_api_gives_4xx_with_a_reason_never_500(network):
    a = network.add("a")
    cases = [
        ("POST", "/api/tx", None, b"{not json", 400),
        ("POST", "/api/tx", {"hex": "zz"}, None, 400),
        ("POST", "/api/tx", {"hex": "00"}, None, 400),
        ("POST", "/api/tx", {"nothex": 1}, None, 400),
        ("POST", "/api/tx", [1, 2], None, 400),
        ("GET", "/api/tx/" + "ab" * 32, None, None, 404),
        ("GET", "/api/tx/xyz", None, None, 400),
        ("GET", "/api/block/" + "cd" * 32, None, None, 404),
        ("GET", "/api/block/999999", None, None, 404),
        ("GET", "/api/block/nothex", None, None, 400),
        ("GET", "/api/address/1BadAddressXYZ", None, None, 400),
        ("GET", "/api/nothing", None, None, 404),
        ("POST", "/api/control/mining/stop", {}, None, 401),
        ("POST", "/api/control/shutdown", {}, None, 401),
    ]
    for method, path, body, raw, expected in cases:
        code, data = a.request(method, path, body, raw=raw)
        assert code == expected, (method, path, code, data)
        assert isinstance(data, dict) and data.get("error"), (path, data)
    code, data = a.request("POST", "/api/control/shutdown", {}, token="wrong")
    assert code == 401
    assert a.running
    # The cookie is the owner's alone.
    assert os.stat(os.path.join(a.datadir, ".cookie")).st_mode & 0o777 == 0o600


def test_star_of_3_a_node_learns_peer_addresses_and_dials_them(network):
    hub = network.add("hub")
    b = network.add("b", "--connect", hub.address)
    wait_peers(hub, 1)
    # c knows only the hub, but with --discover it dials the addresses the hub tells it.
    c = network.add("c", "--connect", hub.address, "--discover")
    wait_until(lambda: any(p["address"] == b.address for p in c.get("/api/peers")["peers"]), 30,
               lambda: f"c never dialled b: {c.get('/api/peers')}")
    assert b.address in c.get("/api/peers")["known_addresses"]


def test_a_node_says_at_start_which_library_verifies_its_signatures(network):
    """The default install verifies with libsecp256k1 and says so; MINICHAIN_VERIFY=ecdsa
    picks the pure-Python reference, with a warning that says how slow it is and why."""
    fast = network.add("fast")
    slow = NodeProcess(network.workdir, "slow", env={"MINICHAIN_VERIFY": "ecdsa"})
    network.nodes.append(slow)
    slow.start()
    assert "INFO    minichain.node: verifying signatures with coincurve" in fast.log_text()
    line = next(l for l in slow.log_text().splitlines() if "verifying signatures with" in l)
    assert "WARNING" in line and "python-ecdsa" in line and "chosen by MINICHAIN_VERIFY" in line
