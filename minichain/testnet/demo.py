"""``testnet demo double-spend``: the attack on a real network of four node processes.

The story (Nakamoto's section 11, played out rather than computed):

    merchant ---- honest-miner   |   attacker ---- attacker-miner
          (one side of the split)    (the other side)

 1. four nodes start, every pair linked; each actor gets a key file
 2. the attacker's miner mines one block paying the attacker (its coinbase is the coin
    to be spent twice); the honest miner mines on top until that coin matures
 3. the network splits into {merchant, honest-miner} | {attacker, attacker-miner}
 4. the attacker pays the merchant with the coin, through the merchant's node  (PAY)
 5. on its own side it pays itself with the same coin                          (SELF)
 6. the honest miner mines ``confirmations`` blocks: the merchant sees PAY confirmed
 7. the attacker's miner mines ``attacker_blocks`` blocks with SELF
 8. the partition heals; every node follows the branch with the most work
 9. each node is asked where PAY and SELF are now, and the history checker judges it

Both payments are written to the network's client history (``DIR/history.jsonl``) as a
merchant's client would see them: PAY invoked at step 4 and accepted at step 6 with the
confirmations the merchant saw, SELF likewise on the attacker's side. After the heal the
checker ``testnet check`` runs (``history/chain.py``) reads that history against every
node's chain, and reports the payment that was accepted at k confirmations and is gone:
the demo's summary and the checker name the same payment.

To make the outcome certain the blocks are mined with the generate endpoint, a fixed
number on each side (one side after the other), instead of racing live miners: with
``attacker_blocks > confirmations`` the attacker's branch has more work and the
merchant's payment disappears; with fewer, the payment survives. The summary is read
back from the nodes (which transaction each node has in its chain, how many blocks
the losing branch had), not assumed from the plan. Equal counts are refused: with
equal work every node keeps the branch it saw first and the network stays split.

Simplification, said plainly: on testnet a retarget inside the partition could give
the two branches different work per block; the default counts stay inside the first
retarget window, and the summary reports the work each branch really had.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from minichain import params as chain_params
from minichain.history.records import HistoryWriter
from minichain.testnet import network as tn
from minichain.testnet.observer import Observer
from minichain.testnet.spec import NetworkSpec
from minichain.testnet.topology import links
from minichain.wallet.amounts import format_amount
from minichain.wallet.client import NodeClient, NodeRequestError

ACTORS = ("merchant", "honest-miner", "attacker", "attacker-miner")
MERCHANT, HONEST, ATTACKER, ATTACKER_MINER = range(4)
SIDES = [[MERCHANT, HONEST], [ATTACKER, ATTACKER_MINER]]


class DemoError(Exception):
    """The demo could not be played; ``str()`` says at which step and why."""


class Narrator:
    """Where the story goes. The command line prints it; tests keep it."""

    def step(self, number: int, text: str) -> None:
        pass

    def detail(self, text: str) -> None:
        pass


@dataclass
class TxFate:
    txid: str
    where: dict[str, str] = field(default_factory=dict)   # node -> "block H (N confirmations)" / "mempool" / "gone"
    in_chain: dict[str, bool] = field(default_factory=dict)


@dataclass
class DemoResult:
    network: str
    directory: str
    coin: str                 # the outpoint spent twice
    amount: int
    pay: TxFate
    self_pay: TxFate
    survivor: str | None      # "payment", "self-payment", or None if neither/both (a failure)
    merchant_confirmations: int
    merchant_balance_before: int
    merchant_balance_after: int
    fork_height: int
    merchant_branch: dict[str, Any]   # {"tip", "height", "chainwork"} before the heal
    attacker_branch: dict[str, Any]
    winner: str               # "attacker" or "merchant": whose branch the network follows
    orphaned_blocks: int      # blocks of the losing branch no longer in the chain
    reorg_depth: int          # blocks the losing side's nodes disconnected
    final_tip: str
    final_height: int
    heal_seconds: float
    seconds: float
    check: list[str] = field(default_factory=list)   # the history checker's violations, one line each
    check_ok: bool = True

    def to_json(self) -> dict:
        return asdict(self)


def _node_spec(network: str, extra_args: list[str]) -> NetworkSpec:
    return NetworkSpec(network=network, names=list(ACTORS), topology="full", links=links("full", 4), miners=[],
                       seed=0, extra_args=list(extra_args))


def check_plan(confirmations: int, attacker_blocks: int | None) -> int:
    """The attacker's block count (default: two more than the merchant waits for);
    DemoError for a plan that cannot be played."""
    if confirmations < 1:
        raise DemoError("the merchant waits for at least 1 confirmation")
    if attacker_blocks is None:
        attacker_blocks = confirmations + 2
    if attacker_blocks < 1:
        raise DemoError("the attacker's side mines at least 1 block (its transaction must be in one)")
    if attacker_blocks == confirmations:
        raise DemoError(f"{attacker_blocks} blocks on each side is a tie: with equal work every node keeps the "
                        "branch it saw first and the network stays split; choose a different --attacker-blocks")
    return attacker_blocks


def double_spend(*, network: str = "testnet", directory: str | None = None, confirmations: int = 3,
                 attacker_blocks: int | None = None, amount: int = 10 * chain_params.COIN, keep: bool = False,
                 narrator: Narrator | None = None, observer: Observer | None = None,
                 extra_args: list[str] | None = None) -> DemoResult:
    """Play the double spend on a fresh network in ``directory`` (a new temporary one by
    default), then stop it (and delete a temporary directory) unless ``keep``."""
    say = narrator or Narrator()
    attacker_blocks = check_plan(confirmations, attacker_blocks)
    temporary = directory is None
    if temporary:
        directory = tempfile.mkdtemp(prefix="minichain-demo-")
    else:
        directory = os.path.abspath(directory)
        if os.path.exists(directory) and os.listdir(directory):
            raise DemoError(f"{directory} is not empty: the demo needs a new or empty directory")
    began = time.monotonic()
    started = ok = False
    try:
        state = tn.up(directory, _node_spec(network, extra_args or []), observer)
        started = True
        result = _play(state, network, confirmations, attacker_blocks, amount, say, began)
        ok = True
        return result
    except (tn.TestnetError, tn.NodeError, DemoError) as exc:
        kept = "" if keep else f" (the nodes' logs are kept in {directory})"
        raise DemoError(f"{exc}{kept}") from None
    finally:
        # A temporary directory goes when the demo worked; after a failure its logs stay.
        if started and not keep:
            tn.down(directory, purge=temporary and ok)


def _play(state, network: str, z: int, attacker_blocks: int, amount: int, say: Narrator,
          began: float) -> DemoResult:
    from minichain.wallet.keyfile import KeyFile
    from minichain.wallet.wallet import Wallet, WalletError

    p = chain_params.by_name(network)
    nodes = state.nodes
    clients = [tn.client_for(r, timeout=60.0) for r in nodes]
    names = [r.name for r in nodes]

    def wallet_of(i: int) -> KeyFile:
        kf, _ = KeyFile.create(os.path.join(nodes[i].datadir, "wallet.json"), network)
        return kf

    say.step(1, f"Four nodes start on {network}, every pair linked: " + ", ".join(
        f"{r.name} ({r.p2p})" for r in nodes))
    merchant_kf, attacker_kf, honest_kf = wallet_of(MERCHANT), wallet_of(ATTACKER), wallet_of(HONEST)
    merchant_addr = merchant_kf.next_address()
    attacker_addr = attacker_kf.next_address()
    honest_addr = honest_kf.next_address()
    say.detail(f"wallets: merchant {merchant_addr}, attacker {attacker_addr}, honest miner {honest_addr}")

    say.step(2, f"The attacker's miner mines a block paying the attacker {format_amount(p.initial_subsidy)} coins; "
                f"the honest miner mines {p.coinbase_maturity} more so that coin matures "
                f"(coinbase maturity {p.coinbase_maturity})")
    clients[ATTACKER_MINER].generate(1, attacker_addr)
    _sync(nodes, clients)
    clients[HONEST].generate(p.coinbase_maturity, honest_addr)
    fork_tip, fork_height = _sync(nodes, clients)
    say.detail(f"every node at height {fork_height}, tip {fork_tip[:16]}")

    say.step(3, "The network splits: {merchant, honest-miner} | {attacker, attacker-miner}")
    tn.partition(state.directory, SIDES)
    _wait(lambda: all(clients[i].status()["peers"] == 1 for i in range(4)), 30,
          "the links across the partition did not drop", nodes, clients)
    say.detail("each node now has one peer: its neighbour on the same side")

    say.step(4, f"The attacker pays the merchant {format_amount(amount)} coins, through the merchant's node")
    history = state.history
    try:
        invoked = time.time()
        pay = Wallet(attacker_kf, clients[MERCHANT]).send(merchant_addr, amount)
        _record(history, 1, "merchant", pay, merchant_addr, amount, invoked)
        say.detail(f"PAY  {pay.txid}  spends {_coins(pay)}")
        say.step(5, "On its own side the attacker pays itself with the same coin, through its own node")
        self_addr = attacker_kf.next_address()
        invoked = time.time()
        self_pay = Wallet(attacker_kf, clients[ATTACKER]).send(self_addr, amount)
        _record(history, 2, "attacker", self_pay, self_addr, amount, invoked)
    except WalletError as exc:
        raise DemoError(f"the attacker's wallet could not pay: {exc}") from None
    say.detail(f"SELF {self_pay.txid}  spends {_coins(self_pay)}")
    coins_pay = {(c.txid, c.vout) for c in pay.selection.coins}
    coins_self = {(c.txid, c.vout) for c in self_pay.selection.coins}
    common = coins_pay & coins_self
    if not common:
        raise DemoError("the two payments spend different coins; this is no double spend (the attacker's "
                        f"wallet holds more than one coin: {sorted(coins_pay | coins_self)})")
    coin = "%s:%d" % sorted(common)[0]
    say.detail(f"both spend {coin}: each side has seen only one of them, and each accepts the one it saw")
    _wait(lambda: _in_mempool(clients[HONEST], pay.txid) and _in_mempool(clients[ATTACKER_MINER], self_pay.txid),
          30, "the payments did not reach the miners on their side", nodes, clients)

    say.step(6, f"The honest miner mines {z} block(s); PAY is in the first")
    clients[HONEST].generate(z, honest_addr)
    _wait(lambda: clients[MERCHANT].tx(pay.txid).get("confirmations", 0) >= z, 30,
          "the merchant's node did not see the payment confirmed", nodes, clients)
    merchant_wallet = Wallet(merchant_kf, clients[MERCHANT])
    balance_before = merchant_wallet.snapshot(1).balance()["confirmed"]
    seen = clients[MERCHANT].tx(pay.txid)
    _record(history, 1, "merchant", pay, merchant_addr, amount, accepted=seen)
    say.detail(f"the merchant's node shows PAY in block {seen['block_height']} with {seen['confirmations']} "
               f"confirmation(s); the merchant's balance is {format_amount(balance_before)}: it ships the goods")

    say.step(7, f"Meanwhile the attacker's miner mines {attacker_blocks} block(s) on its side; SELF is in the first")
    clients[ATTACKER_MINER].generate(attacker_blocks, attacker_addr)
    _wait(lambda: clients[ATTACKER].status()["height"] >= fork_height + attacker_blocks, 30,
          "the attacker's node did not follow its miner", nodes, clients)
    _record(history, 2, "attacker", self_pay, self_addr, amount, accepted=clients[ATTACKER].tx(self_pay.txid))
    branches = {}
    for side, i in (("merchant", MERCHANT), ("attacker", ATTACKER)):
        s = clients[i].status()
        branches[side] = {"tip": s["tip"], "height": s["height"], "chainwork": s["chainwork"]}
        say.detail(f"{side}'s side: height {s['height']} (+{s['height'] - fork_height}), tip {s['tip'][:16]}, "
                   f"chain work {int(s['chainwork'], 16):,}")

    say.step(8, "The partition heals: the nodes exchange headers and follow the branch with the most work")
    healed = time.monotonic()
    tn.heal(state.directory)
    final_tip, final_height = _sync(nodes, clients, timeout=60)
    heal_seconds = time.monotonic() - healed
    winner = "attacker" if final_tip == branches["attacker"]["tip"] else (
        "merchant" if final_tip == branches["merchant"]["tip"] else "neither")
    say.detail(f"all four nodes at height {final_height}, tip {final_tip[:16]}: the {winner}'s branch "
               f"({heal_seconds:.1f} s after the heal)")
    if winner == "neither":
        raise DemoError(f"the network settled on {final_tip[:16]}, neither side's branch (was a block mined "
                        "by someone else?)")

    say.step(9, "Where are the two payments now? Every node is asked")
    fates = []
    for label, txid in (("PAY", pay.txid), ("SELF", self_pay.txid)):
        fate = TxFate(txid)
        for name, c in zip(names, clients):
            fate.where[name], fate.in_chain[name] = _locate(c, txid)
        fates.append(fate)
        say.detail(f"{label:4} {txid[:16]}: " + "; ".join(f"{n} {w}" for n, w in fate.where.items()))
    pay_fate, self_fate = fates
    in_pay, in_self = all(pay_fate.in_chain.values()), all(self_fate.in_chain.values())
    none_pay, none_self = not any(pay_fate.in_chain.values()), not any(self_fate.in_chain.values())
    survivor = "payment" if in_pay and none_self else "self-payment" if in_self and none_pay else None
    balance_after = merchant_wallet.snapshot(1).balance()["confirmed"]
    say.detail(f"the merchant's balance: {format_amount(balance_before)} -> {format_amount(balance_after)}")

    from minichain.testnet.check import check as check_history

    report = check_history(state)
    say.detail("the history checker: " + ("; ".join(report.summary()) or "no accepted payment was reversed"))

    loser_side, loser_node = ("merchant", MERCHANT) if winner == "attacker" else ("attacker", ATTACKER)
    orphaned, fork = _orphaned(clients[loser_node], branches[loser_side]["tip"])
    reorg_depth = branches[loser_side]["height"] - fork
    return DemoResult(
        network=network, directory=state.directory, coin=coin, amount=amount, pay=pay_fate, self_pay=self_fate,
        survivor=survivor, merchant_confirmations=seen["confirmations"], merchant_balance_before=balance_before,
        merchant_balance_after=balance_after, fork_height=fork, merchant_branch=branches["merchant"],
        attacker_branch=branches["attacker"], winner=winner, orphaned_blocks=orphaned, reorg_depth=reorg_depth,
        final_tip=final_tip, final_height=final_height, heal_seconds=heal_seconds,
        seconds=time.monotonic() - began, check=report.summary(), check_ok=report.ok)


def _record(history: str, op: int, who: str, sent, payee: str, amount: int, invoked: float | None = None,
            accepted: dict | None = None) -> None:
    """A payment in the client history: its invocation, or (``accepted``) the merchant's
    acceptance with the confirmations it saw."""
    value = {"txid": sent.txid, "coins": [f"{c.txid}:{c.vout}" for c in sent.selection.coins], "payee": payee,
             "amount": amount, "node": who}
    with HistoryWriter(history) as writer:
        if accepted is None:
            writer.write({"type": "invoke", "op": op, "process": who, "f": "pay", "value": value, "time": invoked})
        else:
            writer.write({"type": "ok", "op": op, "process": who, "f": "pay", "value": value, "node": who,
                          "confirmations": accepted["confirmations"], "height": accepted.get("block_height"),
                          "block": accepted.get("block_hash")})


def _coins(result) -> str:
    return ", ".join(f"{c.txid[:16]}:{c.vout} ({format_amount(c.value)})" for c in result.selection.coins)


def _in_mempool(client: NodeClient, txid: str) -> bool:
    return any(t["txid"] == txid for t in client.mempool()["transactions"])


def _locate(client: NodeClient, txid: str) -> tuple[str, bool]:
    """Where ``client``'s node has ``txid``: (description, in the active chain)."""
    try:
        tx = client.tx(txid)
    except NodeRequestError as exc:
        if exc.status == 404:
            return "gone", False
        raise
    if tx.get("in_mempool"):
        return "in the mempool", False
    return f"block {tx['block_height']} ({tx['confirmations']} conf)", True


def _orphaned(client: NodeClient, tip: str) -> tuple[int, int]:
    """Walk back from the losing tip to the active chain: (blocks off it, fork height)."""
    count = 0
    block = client.block(tip, full=False)
    while not block["active"]:
        count += 1
        block = client.block(block["previous"], full=False)
    return count, block["height"]


def _sync(nodes, clients, timeout: float = 60.0) -> tuple[str, int]:
    tip, height, _ = tn.wait_synced(nodes, clients, timeout=timeout)
    return tip, height


def _wait(predicate, timeout: float, what: str, nodes, clients) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (tn.NodeError, KeyError) as exc:
            last = exc
        time.sleep(0.1)
    statuses = tn.poll_all(clients, lambda c: c.status())
    raise DemoError(f"{what} within {timeout:g}s" + (f" ({last})" if last else "") + ":\n"
                    + tn.describe_tips(nodes, statuses))
