"""``minichain chain``: ask a running node about its chain (read-only, no token needed)."""

from __future__ import annotations

import json
import time

import click

from minichain.cli.common import (CommandError, check_node_network, console, handle_errors, json_option, make_client,
                                  node_option, optional_network_option)
from minichain.wallet.amounts import format_amount


def client_options(f):
    for decorate in (json_option, optional_network_option, node_option):
        f = decorate(f)
    return f


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=True))


def _table(title: str | None, columns: list[tuple[str, bool]], rows: list[list[str]], **kw):
    from rich.table import Table

    table = Table(title=title, **kw)
    for name, right in columns:
        table.add_column(name, justify="right" if right else "left")
    for row in rows:
        table.add_row(*row)
    console().print(table)


def _kv(title: str, pairs: list[tuple[str, object]]) -> None:
    _table(title, [("field", False), ("value", False)], [[k, str(v)] for k, v in pairs], show_header=False)


def _ago(ts: int) -> str:
    delta = int(time.time()) - int(ts)
    if delta < 0:
        return f"{-delta}s in the future"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{delta // size}{unit} ago"
    return f"{delta}s ago"


@click.group()
def chain() -> None:
    """Look at a running node's chain: status, blocks, transactions, tips, peers.

    Every command takes --node URL (env MINICHAIN_NODE) and --json. Exit codes:
    0 ok, 1 refused or failed, 2 bad command line, 3 no node at the URL.

    \b
    Example:
      minichain chain status --node 127.0.0.1:8332
      minichain chain block 101 --json
    """


@chain.command("status")
@client_options
@handle_errors
def chain_status(node_url, network, as_json):
    """Height, tip, peers, mempool and mining of the node.

    \b
    Example:
      minichain chain status
    """
    status = check_node_network(make_client(node_url), network)
    if as_json:
        _echo_json(status)
        return
    synced = "yes" if status["height"] >= status["headers"] else f"no ({status['headers'] - status['height']} blocks behind its best header)"
    _kv(f"node {node_url}", [
        ("network", status["network"]), ("height", status["height"]), ("tip", status["tip"]),
        ("synced", synced), ("bits", status["bits"]), ("chainwork", status["chainwork"]),
        ("peers", status["peers"]),
        ("mempool", f"{status['mempool']['size']} txs, {status['mempool']['bytes']} bytes"),
        ("mining", f"yes, {status['hashrate']:,.0f} H/s" if status["mining"] else "no"),
        ("orphans", status["orphans"]), ("version", status["version"]),
    ])


@chain.command("block")
@client_options
@click.argument("ident", metavar="HASH|HEIGHT")
@handle_errors
def chain_block(node_url, network, as_json, ident):
    """Show a block by its hash or its height in the active chain.

    \b
    Example:
      minichain chain block 0
      minichain chain block 3f2a...e9 --json
    """
    client = make_client(node_url)
    check_node_network(client, network)
    b = client.block(ident)
    if as_json:
        _echo_json(b)
        return
    _kv(f"block {b['height']}", [
        ("hash", b["hash"]), ("height", b["height"]),
        ("confirmations", b["confirmations"] if b["active"] else f"0 (not in the active chain: {b['status']})"),
        ("previous", b["previous"] or "(none: the genesis block)"), ("merkle root", b["merkle_root"]),
        ("time", f"{b['time']} ({_ago(b['time'])})"), ("bits", b["bits"]), ("nonce", b["nonce"]),
        ("size", b.get("size", "(block data not stored)")), ("miner", b.get("miner", "")),
    ])
    txs = b.get("transactions", [])
    if txs:
        rows = []
        for t in txs:
            paid = sum(o["value"] for o in t["outputs"])
            rows.append([t["txid"], "coinbase" if t["coinbase"] else str(len(t["inputs"])), str(len(t["outputs"])),
                         format_amount(paid)])
        _table(f"{len(txs)} transaction(s)", [("txid", False), ("inputs", True), ("outputs", True), ("paid out", True)],
               rows)


@chain.command("blocks")
@client_options
@click.option("--count", default=10, show_default=True, type=click.IntRange(1, 100), help="How many, from the tip down.")
@handle_errors
def chain_blocks(node_url, network, as_json, count):
    """List the latest blocks, tip first.

    \b
    Example:
      minichain chain blocks --count 20
    """
    client = make_client(node_url)
    check_node_network(client, network)
    blocks = client.blocks(count)
    if as_json:
        _echo_json(blocks)
        return
    _table(None, [("height", True), ("hash", False), ("txs", True), ("size", True), ("time", False)],
           [[str(b["height"]), b["hash"], str(b.get("tx_count", "")), str(b.get("size", "")), _ago(b["time"])]
            for b in blocks])


@chain.command("tx")
@client_options
@click.argument("txid")
@handle_errors
def chain_tx(node_url, network, as_json, txid):
    """Show a transaction, from the chain or the node's mempool.

    \b
    Example:
      minichain chain tx 9c1d...42 --json
    """
    client = make_client(node_url)
    check_node_network(client, network)
    t = client.tx(txid)
    if as_json:
        _echo_json(t)
        return
    where = "in the mempool (unconfirmed)" if t.get("in_mempool") else f"block {t.get('block_height')}"
    pairs = [("txid", t["txid"]), ("where", where), ("confirmations", t["confirmations"]), ("size", f"{t['size']} bytes")]
    if "fee" in t:
        pairs.append(("fee", f"{format_amount(t['fee'])} ({t['fee'] / t['size']:.2f} units/byte)"))
    _kv("transaction", pairs)
    if t["coinbase"]:
        ins = [["coinbase", "", ""]]
    else:
        ins = [[f"{i['txid']}:{i['vout']}", i.get("address", ""), format_amount(i["value"]) if "value" in i else "?"]
               for i in t["inputs"]]
    _table("inputs", [("spends", False), ("address", False), ("coins", True)], ins)
    _table("outputs", [("n", True), ("address", False), ("coins", True)],
           [[str(o["n"]), o["address"], format_amount(o["value"])] for o in t["outputs"]])


@chain.command("tips")
@client_options
@handle_errors
def chain_tips(node_url, network, as_json):
    """List the tips of every branch the node knows (Bitcoin: getchaintips).

    \b
    Example:
      minichain chain tips
    """
    client = make_client(node_url)
    check_node_network(client, network)
    tips = client.tips()
    if as_json:
        _echo_json(tips)
        return
    _table(None, [("height", True), ("hash", False), ("branch length", True), ("status", False)],
           [[str(t["height"]), t["hash"], str(t["branchlen"]), t["status"]] for t in tips])


@chain.command("peers")
@client_options
@handle_errors
def chain_peers(node_url, network, as_json):
    """List the node's peer links, and its bans.

    \b
    Example:
      minichain chain peers --json
    """
    client = make_client(node_url)
    check_node_network(client, network)
    info = client.peers()
    if as_json:
        _echo_json(info)
        return
    peers = info.get("peers", [])
    if not peers:
        click.echo("no peers")
    else:
        keys = sorted({k for p in peers for k in p})
        _table(f"{len(peers)} peer(s)", [(k, False) for k in keys], [[str(p.get(k, "")) for k in keys] for p in peers])
    if info.get("bans"):
        _table("bans", [("address", False), ("seconds left", True)],
               [[b["address"], str(b["seconds_left"])] for b in info["bans"]])


@chain.command("mempool")
@client_options
@handle_errors
def chain_mempool(node_url, network, as_json):
    """List the transactions waiting in the node's mempool, best fee rate first.

    \b
    Example:
      minichain chain mempool
    """
    client = make_client(node_url)
    check_node_network(client, network)
    pool = client.mempool()
    if as_json:
        _echo_json(pool)
        return
    if not pool["transactions"]:
        click.echo("the mempool is empty")
        return
    shown = f", the best {len(pool['transactions'])} shown" if pool.get("next") else ""
    _table(f"{pool['size']} transaction(s), {pool['bytes']} bytes{shown}",
           [("txid", False), ("fee", True), ("size", True), ("units/byte", True), ("waits for", True)],
           [[t["txid"], format_amount(t["fee"]), str(t["size"]), f"{t['fee_rate']:.2f}", str(len(t["depends"]))]
            for t in pool["transactions"]])


@chain.command("wait-sync")
@click.option("--timeout", default=600.0, show_default=True, type=click.FloatRange(0), help="Give up after this many seconds.")
@optional_network_option
@node_option
@handle_errors
def chain_wait_sync(timeout, network, node_url):
    """Wait, with a progress bar, until the node has caught up: it has a peer, and its
    chain is as high as its best header and as every peer said its chain was.

    \b
    Example:
      minichain chain wait-sync --node 127.0.0.1:9101 --timeout 120
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    client = make_client(node_url)
    status = check_node_network(client, network)
    deadline = time.monotonic() + timeout
    start_height = status["height"]

    def target_of(status: dict) -> tuple[int, int]:
        ready = [p for p in client.peers().get("peers", []) if p.get("ready")]
        best = max([status["headers"]] + [p.get("start_height") or 0 for p in ready])
        return best, len(ready)

    with Progress(TextColumn("syncing"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                  TimeRemainingColumn(), console=console(stderr=True)) as progress:
        task = progress.add_task("sync", total=None)
        while True:
            target, peers = target_of(status)
            progress.update(task, total=max(1, target - start_height), completed=max(0, status["height"] - start_height))
            if peers and status["height"] >= target:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"not synced after {timeout:g}s: height {status['height']} of {target}, "
                                   f"{peers} peer(s)" + ("; the node has no peers to sync from" if not peers else ""))
            time.sleep(0.25)
            status = client.status()
    click.echo(f"synced at height {status['height']} ({status['tip']})")
