"""``testnet workload``: clients paying at a steady rate, every step written to the history.

**On replicas** (the simulator's coin workload, ``sim/workload.py``): operation ``k`` is
``Payment(client=0, seq=k, coin="c<k>", payee="payee<k>")``, handed to every replica at
once (as the simulator's workload and PBFT's clients do, Castro & Liskov 1999, 4.1) with
``POST /api/submit``, each replica answering once the payment is in its committed prefix
(``replica/ledger.py``) or after ``--wait`` seconds. The operation is

* **ok** once enough replicas say "committed at slot s" with the same s -- one for the
  crash-fault engines, ``f + 1`` for the Byzantine ones (PBFT's client waits for f + 1
  matching replies, 4.1: one of them is honest);
* **fail** once as many say "rejected: the coin is spent by another payment";
* **info** otherwise: the client cannot tell (the replicas it reached were cut off,
  down, paused, or slower than ``--wait``). It may still commit later.

With ``--conflicts P`` a fraction P of the operations is shadowed by a concurrent twin:
the same coin paid to another payee (client 1), so that "no coin spent twice" and the
failed outcomes are exercised.

**On a Nakamoto testnet** payments go through the wallet: a miner's wallet pays a fresh
address, through a node; the operation is ok when the transaction has ``--confirmations``
confirmations there, fail when the node or the wallet refuses it, info on a timeout. The
check later reports a payment acknowledged at k confirmations and no longer in the chain.

Operation numbers continue those already in the history, so several workload runs (and
the nemesis) share one history. Run one workload at a time per testnet.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from minichain.history.records import HistoryWriter, read_history
from minichain.testnet.state import TestnetState

DEFAULT_WAIT = 5.0


class WorkloadError(Exception):
    """The workload cannot run as asked; ``str()`` says why."""


@dataclass
class WorkloadResult:
    operations: int = 0
    ok: int = 0
    fail: int = 0
    info: int = 0
    latencies: list[float] = field(default_factory=list)   # ok operations, invoke -> ok
    seconds: float = 0.0
    history: str = ""

    def to_json(self) -> dict:
        lat = sorted(self.latencies)
        return {"operations": self.operations, "ok": self.ok, "fail": self.fail, "info": self.info,
                "latency_median": statistics.median(lat) if lat else None,
                "latency_p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None,
                "seconds": round(self.seconds, 3), "history": self.history}


def next_op(path: str) -> int:
    """The first operation number not yet used in the history at ``path``."""
    try:
        events = read_history(path)
    except Exception:  # noqa: BLE001 - no history yet, or a damaged one: start after what we can see
        return 1
    return max((e["op"] for e in events if isinstance(e.get("op"), int)), default=0) + 1


def acks_needed(state: TestnetState) -> int:
    """Matching replies a client waits for: f + 1 for the Byzantine engines, else one."""
    from minichain.sim.engines import load_registry

    spec = load_registry()[state.engine]
    return spec.max_faults(len(state.nodes)) + 1 if spec.fault_model == "byzantine" else 1


# -- replicas ----------------------------------------------------------------------------------


def run_replicas(state: TestnetState, *, rate: float, duration: float, wait: float = DEFAULT_WAIT,
                 conflicts: float = 0.0, seed: int = 0, progress: Callable[[WorkloadResult], None] | None = None
                 ) -> WorkloadResult:
    return asyncio.run(_run_replicas(state, rate, duration, wait, conflicts, seed, progress))


async def _run_replicas(state: TestnetState, rate: float, duration: float, wait: float, conflicts: float, seed: int,
                        progress: Callable[[WorkloadResult], None] | None) -> WorkloadResult:
    import aiohttp

    result = WorkloadResult(history=state.history)
    need = acks_needed(state)
    urls = [f"{r.url}/api/submit" for r in state.nodes]
    rng = random.Random(seed)
    first = next_op(state.history)
    count = max(1, int(rate * duration))
    writer = HistoryWriter(state.history)
    began = time.monotonic()

    async def submit(session: aiohttp.ClientSession, url: str, payment: dict) -> dict | None:
        try:
            async with session.post(url, json={"payment": payment, "wait": wait}) as resp:
                if resp.status != 200:
                    return None
                return await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return None

    async def operation(session: aiohttp.ClientSession, op: int, process: int, payment: dict) -> None:
        invoke = writer.write({"type": "invoke", "op": op, "process": process, "f": "pay", "value": payment})
        committed: dict[int, list[int]] = {}
        rejected: list[dict] = []
        verdict: dict[str, Any] | None = None
        tasks = [asyncio.ensure_future(submit(session, url, payment)) for url in urls]
        try:
            for done in asyncio.as_completed(tasks):
                answer = await done
                if not isinstance(answer, dict):
                    continue
                if answer.get("status") == "committed" and isinstance(answer.get("slot"), int):
                    nodes = committed.setdefault(answer["slot"], [])
                    nodes.append(answer.get("node"))
                    if len(nodes) >= need:
                        verdict = {"type": "ok", "slot": answer["slot"], "nodes": sorted(nodes)}
                        break
                elif answer.get("status") == "rejected":
                    rejected.append(answer)
                    if len(rejected) >= need:
                        spent = rejected[0]
                        verdict = {"type": "fail", "nodes": sorted(a.get("node") for a in rejected),
                                   "error": f"coin {payment['coin']} already spent at slot {spent.get('slot')} by "
                                            f"{_show(spent.get('spent_by'))}"}
                        break
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if verdict is None:
            answered = ", ".join(f"slot {s}: {len(ns)}" for s, ns in sorted(committed.items()))
            verdict = {"type": "info", "error": f"no {need} matching verdict(s) within {wait:g}s"
                                                + (f" (committed answers {answered})" if answered else "")}
        event = writer.write({"op": op, "process": process, "f": "pay", "value": payment, **verdict})
        result.operations += 1
        if verdict["type"] == "ok":
            result.ok += 1
            result.latencies.append(event["time"] - invoke["time"])
        elif verdict["type"] == "fail":
            result.fail += 1
        else:
            result.info += 1

    timeout = aiohttp.ClientTimeout(total=wait + 5, sock_connect=2)
    connector = aiohttp.TCPConnector(limit=0)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            running: set[asyncio.Task] = set()
            last_report = time.monotonic()
            for k in range(count):
                at = began + k / rate
                delay = at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                op = first + 2 * k
                pay = {"client": 0, "seq": op, "coin": f"c{op}", "payee": f"payee{op}"}
                running.add(asyncio.ensure_future(operation(session, op, 0, pay)))
                if conflicts and rng.random() < conflicts:
                    twin = {"client": 1, "seq": op, "coin": f"c{op}", "payee": f"payee{op}-twin"}
                    running.add(asyncio.ensure_future(operation(session, op + 1, 1, twin)))
                running = {t for t in running if not t.done()}
                if progress is not None and time.monotonic() - last_report > 1.0:
                    last_report = time.monotonic()
                    progress(result)
            if running:
                await asyncio.gather(*running)
    finally:
        writer.close()
    result.seconds = time.monotonic() - began
    return result


def _show(value: Any) -> str:
    if isinstance(value, dict) and "coin" in value:
        return f"pay({value['coin']}->{value.get('payee')})"
    return "another payment"


# -- Nakamoto ----------------------------------------------------------------------------------


def run_nakamoto(state: TestnetState, *, rate: float, duration: float, confirmations: int = 1,
                 wait: float | None = None, amount: int = 100_000, seed: int = 0,
                 progress: Callable[[WorkloadResult], None] | None = None) -> WorkloadResult:
    """Payments from the miners' wallets to a merchant's fresh addresses, each acknowledged
    once it has ``confirmations`` confirmations at the node it was sent through."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from minichain.testnet.network import client_for
    from minichain.wallet.keyfile import KeyFile, WalletFileError
    from minichain.wallet.wallet import Wallet, WalletError

    payers = [r for r in state.nodes if r.wallet and os.path.exists(r.wallet)]
    if not payers:
        raise WorkloadError("no miner wallet to pay from: start the testnet with miners")
    try:
        merchant = KeyFile.load(os.path.join(state.directory, "merchant.json")) if os.path.exists(
            os.path.join(state.directory, "merchant.json")) else KeyFile.create(
            os.path.join(state.directory, "merchant.json"), state.network)[0]
    except WalletFileError as exc:
        raise WorkloadError(f"the merchant's wallet: {exc}") from None
    wait = wait if wait is not None else 30.0 + 15.0 * confirmations
    result = WorkloadResult(history=state.history)
    writer = HistoryWriter(state.history)
    first = next_op(state.history)
    count = max(1, int(rate * duration))
    began = time.monotonic()
    rng = random.Random(seed)
    import threading

    # One payment at a time per wallet: two at once could pick the same coin.
    locks = {r.index: threading.Lock() for r in payers}
    merchant_lock = threading.Lock()

    def operation(k: int) -> None:
        op = first + k
        rec = payers[k % len(payers)]
        client = client_for(rec, timeout=30.0)
        with merchant_lock:
            to = merchant.next_address("receive")
        invoke_time = time.time()
        try:
            with locks[rec.index]:
                sent = Wallet(KeyFile.load(str(rec.wallet)), client).send(to, amount)
        except Exception as exc:  # noqa: BLE001 - a refusal (fail) or no answer (info)
            kind = "fail" if isinstance(exc, WalletError) else "info"
            writer.write({"type": "invoke", "op": op, "process": rec.index, "f": "pay",
                          "value": {"payee": to, "amount": amount}, "time": invoke_time})
            writer.write({"type": kind, "op": op, "process": rec.index, "f": "pay",
                          "value": {"payee": to, "amount": amount}, "error": str(exc)})
            result.operations += 1
            setattr(result, kind, getattr(result, kind) + 1)
            return
        value = {"txid": sent.txid, "coins": [f"{c.txid}:{c.vout}" for c in sent.selection.coins],
                 "payee": to, "amount": amount, "node": rec.name}
        writer.write({"type": "invoke", "op": op, "process": rec.index, "f": "pay", "value": value,
                      "time": invoke_time})
        deadline = time.monotonic() + wait
        seen: dict = {}
        while time.monotonic() < deadline:
            try:
                seen = client.tx(sent.txid)
            except Exception:  # noqa: BLE001 - not there (yet), or the node is busy
                seen = {}
            if seen.get("confirmations", 0) >= confirmations:
                break
            time.sleep(0.5)
        result.operations += 1
        if seen.get("confirmations", 0) >= confirmations:
            event = writer.write({"type": "ok", "op": op, "process": rec.index, "f": "pay", "value": value,
                                  "confirmations": seen["confirmations"], "block": seen.get("block_hash"),
                                  "height": seen.get("block_height"), "node": rec.name})
            result.ok += 1
            result.latencies.append(event["time"] - invoke_time)
        else:
            writer.write({"type": "info", "op": op, "process": rec.index, "f": "pay", "value": value,
                          "error": f"fewer than {confirmations} confirmation(s) after {wait:g}s"})
            result.info += 1

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = []
            for k in range(count):
                delay = began + k / rate - time.monotonic() + rng.random() * 0.01
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(operation, k))
                if progress is not None:
                    progress(result)
            for f in futures:
                f.result()
    finally:
        writer.close()
    result.seconds = time.monotonic() - began
    return result
