"""Coverage-guided fuzzing of what a hostile peer can feed the node (atheris, libFuzzer).

    python -m benchmarks.fuzz [--minutes N] [--target NAME ...]

Targets (each a function of bytes; a bug is any exception other than the clear refusal
the code is meant to give):

  message      ``node.messages.decode``: a DecodeError, or a message that encodes and
               decodes back to itself
  block        ``Block.deserialize``: a DecodeError/ValueError, or a block that
               serializes and deserializes back to itself
  tx           ``Transaction.deserialize``, likewise
  tx-rules     CheckTransaction against a reference model written here from Bitcoin's
               rules (values in range, no empty sides, no duplicate inputs, no null
               prevout outside a coinbase): same verdict, same reason
  block-rules  a block built from the input (spends of existing, missing, immature or
               already-spent coins, over- or under-paid coinbases, bad signatures)
               through check_block + contextual_check_block + connect_block, against a
               reference UTXO model: same verdict, and the same UTXO set when valid

Each target runs in a child process (libFuzzer exits when it is done) with the corpus
seeded from the test vectors (encoded messages, blocks and transactions of a small
regtest chain). The table gives executions per second and the coverage libFuzzer
reports (``cov``: edges, ``ft``: features). A crash leaves its input in
``tests/fuzz_crashes/TARGET/``; ``tests/test_fuzz.py`` replays every file there (and the
seed corpus) on every run, so each crash found becomes a regression test.

atheris is an optional extra (``pip install -e '.[fuzz]'``); without it this command
says so and exits 1, and the CI-sized run in the test suite is skipped.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRASH_DIR = os.path.join(ROOT, "tests", "fuzz_crashes")


# -- reading structured input from bytes (what atheris' FuzzedDataProvider does, without it) ------


class Provider:
    """Takes integers and bytes off the front of the input; zeros when it runs out."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int(self, lo: int, hi: int) -> int:
        span = hi - lo + 1
        nbytes = (span.bit_length() + 7) // 8 or 1
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return lo + int.from_bytes(chunk.ljust(nbytes, b"\0"), "little") % span

    def bytes(self, n: int) -> bytes:
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk.ljust(n, b"\0")

    def pick(self, seq):
        return seq[self.int(0, len(seq) - 1)]


# -- decoders ------------------------------------------------------------------------------------


def fuzz_message(data: bytes) -> None:
    from minichain.core.encoding import DecodeError
    from minichain.node import messages as m

    try:
        msg = m.decode(data)
    except DecodeError:
        return
    frame = m.encode(msg)
    assert m.decode(frame) == msg, f"{msg!r} does not survive encode/decode"
    assert msg.size == len(frame), f"{msg!r}: size {msg.size} but {len(frame)} bytes"


def _round_trip(cls, data: bytes) -> None:
    """``cls.deserialize`` refuses ``data`` clearly, or what it gives serializes to the
    bytes it read and deserializes back to itself."""
    from minichain.core.encoding import DecodeError

    try:
        value = cls.deserialize(data)
    except (DecodeError, ValueError):
        return
    raw = value.serialize()
    assert cls.deserialize(raw) == value and raw == data[:len(raw)]
    assert value.size == len(raw)


def fuzz_block(data: bytes) -> None:
    from minichain.core.block import Block

    _round_trip(Block, data)


def fuzz_tx(data: bytes) -> None:
    from minichain.core.tx import Transaction

    _round_trip(Transaction, data)


# -- CheckTransaction against a reference model ----------------------------------------------------


def _reference_tx_reason(tx, max_size: int) -> str | None:
    """Bitcoin's CheckTransaction, written out again (consensus/tx_check.cpp), in order."""
    from minichain.params import MAX_MONEY

    if not tx.inputs:
        return "bad-txns-vin-empty"
    if not tx.outputs:
        return "bad-txns-vout-empty"
    if tx.size > max_size:
        return "bad-txns-oversize"
    total = 0
    for out in tx.outputs:
        if out.value < 0:
            return "bad-txns-vout-negative"
        if out.value > MAX_MONEY:
            return "bad-txns-vout-toolarge"
        total += out.value
        if total > MAX_MONEY:
            return "bad-txns-txouttotal-toolarge"
    prevouts = [i.prevout for i in tx.inputs]
    if len(set(prevouts)) != len(prevouts):
        return "bad-txns-inputs-duplicate"
    coinbase = len(tx.inputs) == 1 and tx.inputs[0].prevout.is_null()
    if not coinbase and any(p.is_null() for p in prevouts):
        return "bad-txns-prevout-null"
    return None


def fuzz_tx_rules(data: bytes) -> None:
    from minichain import params
    from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut
    from minichain.core.validation import ValidationError, check_transaction
    from minichain.params import MAX_MONEY

    p = Provider(data)
    ids = [bytes([i]) * 32 for i in range(4)]
    inputs = []
    for _ in range(p.int(0, 4)):
        if p.int(0, 7) == 0:
            inputs.append(TxIn(OutPoint.NULL, b"cb" + p.bytes(p.int(0, 6))))
        else:
            inputs.append(TxIn(OutPoint(p.pick(ids), p.int(0, 3)), p.bytes(p.int(0, 8)), p.bytes(p.int(0, 33))))
    values = [0, 1, MAX_MONEY, MAX_MONEY + 1, -1, MAX_MONEY // 2 + 1, 2**63 - 1, -(2**63)]
    outputs = [TxOut(p.pick(values) if p.int(0, 1) else p.int(0, MAX_MONEY), p.bytes(20)) for _ in range(p.int(0, 4))]
    tx = Transaction(p.int(0, 3), tuple(inputs), tuple(outputs), p.int(0, 2**32 - 1))
    max_size = p.pick([params.regtest.max_block_size, 60, 200])
    expected = _reference_tx_reason(tx, max_size)
    rules = params.regtest if max_size == params.regtest.max_block_size else _with_max_size(max_size)
    try:
        check_transaction(tx, rules)
        got = None
    except ValidationError as e:
        got = e.reason
    assert got == expected, f"check_transaction says {got}, the model {expected}: {tx!r}"


def _with_max_size(n: int):
    from dataclasses import replace

    from minichain import params

    return replace(params.regtest, max_block_size=n)


# -- block validation against a reference UTXO model ------------------------------------------------


class _BlockWorld:
    """A regtest chain of 102 blocks (so two coinbases are mature), its UTXO set, and
    the keys that own it; built once per process."""

    def __init__(self) -> None:
        from minichain.chainstate import ChainState
        from minichain.store.memory import MemoryStore
        from tests.chainbuilder import ChainBuilder

        self.cb = ChainBuilder(n_keys=2)
        blocks = self.cb.chain(None, 102)
        blocks += self.cb.chain(blocks[-1], 1, n_txs=3)     # some non-coinbase coins too
        self.state = ChainState(MemoryStore(), self.cb.params)
        for b in blocks:
            assert self.state.accept_block(b, 2_000_000_000).status.value == "connected"
        self.tip = blocks[-1]
        self.utxos = dict(self.state.utxo_set())
        self.coins = sorted(self.utxos.items(), key=lambda kv: (kv[1].height, kv[0].txid, kv[0].index))


_WORLD: _BlockWorld | None = None


def fuzz_block_rules(data: bytes) -> None:
    from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase, sign_inputs
    from minichain.core.validation import (
        CoinsCache,
        ValidationError,
        check_block,
        connect_block,
        contextual_check_block,
    )
    from tests.chainbuilder import assemble

    global _WORLD
    if _WORLD is None:
        _WORLD = _BlockWorld()
    w = _WORLD
    params = w.cb.params
    p = Provider(data)
    height = w.state.height + 1
    keys_by_pkh = {k.public_key.hash160(): k for k in w.cb.keys}
    spends = []                                   # (tx, inputs, value in, value out, tampered)
    for _ in range(p.int(0, 3)):
        ins = [OutPoint(p.bytes(32), p.int(0, 3)) if p.int(0, 9) == 0 else p.pick(w.coins)[0]
               for _ in range(p.int(1, 2))]
        value_in = sum(w.utxos[o].value for o in ins if o in w.utxos)
        out_value = max(0, value_in - p.int(0, 3000)) if p.int(0, 5) else value_in + p.int(1, 1000)
        tx = Transaction(1, tuple(TxIn(o) for o in ins), (TxOut(out_value, w.cb.pkh(p.int(0, 1))),), 0)
        tx = sign_inputs(tx, [keys_by_pkh[w.utxos[o].pubkey_hash] if o in w.utxos else w.cb.keys[0] for o in ins])
        tampered = p.int(0, 15) == 0
        if tampered:                              # one bit of the first signature flipped
            inp = tx.inputs[0]
            sig = bytearray(inp.signature)
            sig[len(sig) // 2] ^= 1
            tx = Transaction(1, (TxIn(inp.prevout, bytes(sig), inp.pubkey),) + tx.inputs[1:], tx.outputs, 0)
        spends.append((tx, ins, value_in, out_value, tampered))

    # The reference model, in Bitcoin's order: CheckBlock (every transaction's own rules),
    # then ConnectBlock transaction by transaction (inputs, then signatures), then the
    # coinbase's amount. ``model`` is the UTXO set as it goes.
    expected: str | None = None
    model = {o: c.value for o, c in w.utxos.items()}
    fees = 0
    coinbase_tag = p.int(0, 2**16)
    paid_delta = p.int(1, 50) if p.int(0, 7) == 0 else -p.int(0, 50)
    if _merkle_mutated([b"coinbase"] + [s[0].txid for s in spends]):
        expected = "bad-txns-duplicate"
    elif any(len(set(ins)) != len(ins) for _, ins, _, _, _ in spends):
        expected = "bad-txns-inputs-duplicate"
    for tx, ins, value_in, out_value, tampered in spends:
        if expected is not None:
            break
        for o in ins:                              # input by input
            if o not in model:
                expected = "bad-txns-inputs-missingorspent"
            elif w.utxos[o].coinbase and height - w.utxos[o].height < params.coinbase_maturity:
                expected = "bad-txns-premature-spend-of-coinbase"
            if expected is not None:
                break
        if expected is not None:
            break
        if out_value > value_in:
            expected = "bad-txns-in-belowout"
        elif tampered:
            expected = "bad-signature"
        else:
            fees += value_in - out_value
            for o in ins:
                del model[o]
            model[OutPoint(tx.txid, 0)] = out_value
    halvings = height // params.halving_interval            # Bitcoin's GetBlockSubsidy, written out again
    subsidy = params.initial_subsidy >> halvings if halvings < 64 else 0
    paid = max(0, subsidy + fees + paid_delta)
    coinbase = make_coinbase(height, [TxOut(paid, w.cb.pkh(0))], extra_nonce=coinbase_tag)
    if expected is None:
        if paid > subsidy + fees:
            expected = "bad-cb-amount"
        model[OutPoint(coinbase.txid, 0)] = paid

    block = assemble(w.tip.header, [coinbase, *(s[0] for s in spends)], params, time=w.tip.header.time + 1)
    view = CoinsCache(_DictView(w.utxos))
    try:
        check_block(block, params)
        contextual_check_block(block, w.state.tip, w.state.tree)
        connect_block(block, height, view, params)
        got = None
    except ValidationError as e:
        got = e.reason
    if expected == "bad-signature":
        assert got is not None and got.startswith("mandatory-script-verify-flag-failed"), got
        return
    assert got == expected, f"the node says {got}, the model {expected}"
    if got is None:
        puts, deletes = view.changes()
        after = {o: c.value for o, c in w.utxos.items() if o not in deletes}
        after.update({o: c.value for o, c in puts.items()})
        assert after == model, "the UTXO sets differ"


def _merkle_mutated(ids: list[bytes]) -> bool:
    """Bitcoin's merkle.cpp: a tree is mutated if some level has two equal hashes side by
    side in a pair (CVE-2012-2459); the odd last hash paired with itself does not count."""
    import hashlib

    level = list(ids)
    while len(level) > 1:
        if any(level[i] == level[i + 1] for i in range(0, len(level) - 1, 2)):
            return True
        if len(level) % 2:
            level.append(level[-1])
        level = [hashlib.sha256(hashlib.sha256(level[i] + level[i + 1]).digest()).digest()
                 for i in range(0, len(level), 2)]
    return False


class _DictView:
    def __init__(self, coins: dict) -> None:
        self.coins = coins

    def get_coin(self, outpoint):
        return self.coins.get(outpoint)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "message": fuzz_message,
    "block": fuzz_block,
    "tx": fuzz_tx,
    "tx-rules": fuzz_tx_rules,
    "block-rules": fuzz_block_rules,
}


# -- the seed corpus ----------------------------------------------------------------------------------


def seed_corpus(target: str) -> list[bytes]:
    """Inputs from the test vectors: the encodings of a small regtest chain's blocks,
    transactions and messages (and a few bytes for the structured targets)."""
    from minichain.core.genesis import genesis_block
    from minichain.node import messages as m
    from tests.chainbuilder import ChainBuilder

    cb = ChainBuilder(n_keys=2)
    blocks = cb.chain(None, 101)
    blocks += cb.chain(blocks[-1], 2, n_txs=2)
    txs = [tx for b in blocks[-2:] for tx in b.transactions]
    g = genesis_block(cb.params)
    if target == "block":
        return [g.serialize()] + [b.serialize() for b in blocks[-3:]]
    if target == "tx":
        return [tx.serialize() for tx in txs]
    if target == "message":
        msgs = [
            m.Version(1, g.hash, 5, "/seed/", 8333, 7), m.Verack(), m.Ping(1), m.Pong(2),
            m.Inv([(m.INV_BLOCK, blocks[0].hash), (m.INV_TX, txs[0].txid)]), m.GetData([(m.INV_TX, txs[1].txid)]),
            m.NotFound([(m.INV_BLOCK, g.hash)]), m.GetHeaders([b.hash for b in blocks[:3]], g.hash),
            m.Headers([b.header for b in blocks[:3]]), m.BlockMessage(blocks[-1]), m.TxMessage(txs[-1]),
            m.GetAddr(), m.Addr([("127.0.0.1", 8333), ("::1", 1)]), m.Reject("banned: test"),
        ]
        return [m.encode(x) for x in msgs]
    return [bytes((i + j) % 256 for j in range(64)) for i in range(0, 256, 16)]


# -- running -------------------------------------------------------------------------------------------


def _child(target: str, seconds: float, corpus: str, crashes: str) -> None:
    """In the child process: instrument minichain, then fuzz ``target`` for ``seconds``."""
    import atheris

    with atheris.instrument_imports(include=["minichain"]):
        import minichain.core.block  # noqa: F401
        import minichain.core.tx  # noqa: F401
        import minichain.core.validation  # noqa: F401
        import minichain.node.messages  # noqa: F401
    fn = TARGETS[target]
    os.makedirs(crashes, exist_ok=True)
    argv = [sys.argv[0], corpus, f"-max_total_time={max(1, int(seconds))}", f"-artifact_prefix={crashes}/",
            "-print_final_stats=1", "-rss_limit_mb=4096", "-max_len=4096"]
    atheris.Setup(argv, fn)
    atheris.Fuzz()


def run_target(target: str, seconds: float) -> dict:
    """Fuzz one target in a child process; returns {execs, exec_per_s, cov, ft, ok, output}."""
    corpus = tempfile.mkdtemp(prefix=f"fuzz-{target}-")
    for i, data in enumerate(seed_corpus(target)):
        with open(os.path.join(corpus, f"seed-{i}"), "wb") as f:
            f.write(data)
    crashes = os.path.join(CRASH_DIR, target)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.fuzz", "--child", target, "--seconds", str(seconds),
                           "--corpus", corpus, "--crashes", crashes],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 300)
    out = proc.stdout + proc.stderr
    stats = {"execs": 0, "exec_per_s": 0, "cov": 0, "ft": 0, "ok": proc.returncode == 0, "output": out[-4000:]}
    for key, pattern in (("execs", r"stat::number_of_executed_units:\s*(\d+)"),
                         ("exec_per_s", r"stat::average_exec_per_sec:\s*(\d+)")):
        found = re.findall(pattern, out)
        if found:
            stats[key] = int(found[-1])
    cov = re.findall(r"cov: (\d+) ft: (\d+)", out)
    if cov:
        stats["cov"], stats["ft"] = int(cov[-1][0]), int(cov[-1][1])
    return stats


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="minutes per target (default 1)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="only these targets")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", help=argparse.SUPPRESS)
    parser.add_argument("--crashes", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.seconds, args.corpus, args.crashes)
        return 0
    if not have_atheris():
        print("atheris is not installed: pip install -e '.[fuzz]' (it needs a Linux or macOS wheel for this Python)")
        return 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"fuzzing, {args.minutes:g} min per target (atheris/libFuzzer)")
    for col in ("target", "executions", "exec/s", "cov (edges)", "ft (features)", "result"):
        table.add_column(col, justify="left" if col in ("target", "result") else "right")
    failed = False
    for target in args.target or list(TARGETS):
        stats = run_target(target, args.minutes * 60)
        failed |= not stats["ok"]
        table.add_row(target, f"{stats['execs']:,}", f"{stats['exec_per_s']:,}", str(stats["cov"]), str(stats["ft"]),
                      "ok" if stats["ok"] else f"CRASH (input in tests/fuzz_crashes/{target}/)")
        if not stats["ok"]:
            print(stats["output"], file=sys.stderr)
    Console().print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
