"""``minichain node``: run a full node (and optionally a miner) in the foreground."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import click

from minichain.cli.common import datadir_option, network_option, resolve


def _hostport(ctx, param, value):
    from minichain.node.node import parse_hostport

    if value is None:
        return None
    try:
        if isinstance(value, tuple):
            return [parse_hostport(v) for v in value]
        return parse_hostport(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _block_hash(ctx, param, value):
    if value is None:
        return None
    text = value.strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a block hash (64 hex digits)") from None
    if len(raw) != 32:
        raise click.BadParameter(f"a block hash is 64 hex digits, not {len(text)}")
    return raw[::-1]  # shown reversed, kept in internal byte order


NODE_FLUSH_BLOCKS = 500  # chainstate.state.NODE_FLUSH.blocks (imported lazily: keep --help fast)


@click.command("node")
@network_option
@datadir_option
@click.option("--listen", default="127.0.0.1:8333", show_default=True, callback=_hostport, envvar="MINICHAIN_LISTEN",
              help="Peer-to-peer address to accept peers on (HOST:PORT; port 0 picks a free one).")
@click.option("--api", "api", default="127.0.0.1:8332", show_default=True, callback=_hostport, envvar="MINICHAIN_API",
              help="REST API address. Keep it on 127.0.0.1 unless you mean to expose it.")
@click.option("--no-api", is_flag=True, help="Do not serve the REST API.")
@click.option("--connect", multiple=True, callback=_hostport, metavar="HOST:PORT",
              help="Peer to keep a link to (repeatable). With --connect, only these are dialled.")
@click.option("--discover/--no-discover", default=None,
              help="Also dial addresses learned from peers (default: on unless --connect is given).")
@click.option("--mine", is_flag=True, help="Mine blocks paying --address.")
@click.option("--address", "mining_address", metavar="ADDRESS", help="Address the mined coins pay (see 'minichain wallet address').")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 256), help="Mining threads.")
@click.option("--duty", default=1.0, show_default=True, type=click.FloatRange(0.01, 1.0),
              help="Fraction of the time the miner hashes (models a share of the hash power).")
@click.option("--store", default="leveldb", show_default=True, type=click.Choice(["leveldb", "memory"]),
              help="Where the chain lives: the embedded LevelDB, or memory (lost at exit).")
@click.option("--max-inbound", default=32, show_default=True, type=click.IntRange(0, 1000))
@click.option("--max-outbound", default=8, show_default=True, type=click.IntRange(0, 1000))
@click.option("--ban-seconds", default=24 * 3600, show_default=True, type=click.IntRange(1), help="How long a misbehaving peer stays banned.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]),
              help="text: readable lines; json: one JSON object per line (time, level, event, fields) for jq "
                   "and log shippers.")
@click.option("--reindex", is_flag=True,
              help="First rebuild the UTXO set and the transaction and address indexes from the stored blocks.")
@click.option("--ping-interval", default=30.0, show_default=True, type=click.FloatRange(0.5, 3600), hidden=True,
              help="Seconds between WebSocket pings; a peer that misses a pong is dropped.")
@click.option("--idle-timeout", default=30.0, show_default=True, type=click.FloatRange(0.5, 3600), hidden=True,
              help="Seconds a connection may stay open without completing a request.")
@click.option("--drain-timeout", default=60.0, show_default=True, type=click.FloatRange(0.5, 3600), hidden=True,
              help="Seconds a peer over its send budget has to drain it before it is dropped.")
@click.option("--flush-blocks", default=NODE_FLUSH_BLOCKS, show_default=True, type=click.IntRange(1, 100_000),
              help="Blocks connected in memory between two writes to LevelDB while syncing (1: write every block). "
                   "A crash loses at most this many blocks, never the consistency of the store.")
@click.option("--assumevalid", "assume_valid", metavar="BLOCKHASH", callback=_block_hash,
              help="Do not check the signatures of this block and its ancestors (when it is in the best header "
                   "chain). Opt-in: it trusts whoever gave you the hash.")
def node(network, datadir, listen, api, no_api, connect, discover, mine, mining_address, threads, duty, store,
         max_inbound, max_outbound, ban_seconds, log_level, log_format, reindex, ping_interval, idle_timeout,
         drain_timeout, flush_blocks, assume_valid):
    """Run a node: sync with peers, relay blocks and transactions, serve the API, and mine
    if asked. Stops cleanly on Ctrl-C or SIGTERM.

    \b
    Examples:
      minichain node --network regtest --mine --address mxyz...
      minichain node --listen 127.0.0.1:9001 --connect 127.0.0.1:9000
    """
    import dataclasses

    from minichain.chainstate.state import NODE_FLUSH
    from minichain.core import keys
    from minichain.core.keys import AddressError, decode_address
    from minichain.node.logs import setup_logging
    from minichain.node.node import NodeConfig
    from minichain.store.interface import StoreError

    if keys.VERIFY_ENV_ERROR:
        raise click.UsageError(keys.VERIFY_ENV_ERROR)
    params, datadir = resolve(network, datadir)
    if reindex and store == "memory":
        raise click.UsageError("--reindex rebuilds a data directory; a memory store has nothing to rebuild")
    if mine:
        if not mining_address:
            raise click.UsageError("--mine needs --address ADDRESS to pay the mined coins to")
    if mining_address:
        try:
            decode_address(mining_address, params.address_version)
        except AddressError as exc:
            raise click.BadParameter(str(exc), param_hint="--address") from None
    setup_logging(log_level, log_format)
    config = NodeConfig(
        params=params, datadir=datadir, listen=listen, api=None if no_api else api, connect=list(connect or []),
        discover=(not connect) if discover is None else discover, max_inbound=max_inbound, max_outbound=max_outbound,
        mine=mine, mining_address=mining_address, threads=threads, duty=duty, store=store,
        ban_seconds=ban_seconds, ping_interval=ping_interval, idle_timeout=idle_timeout,
        drain_timeout=drain_timeout, assume_valid=assume_valid, flush=dataclasses.replace(NODE_FLUSH, blocks=flush_blocks),
    )
    _log_verification(assume_valid)
    try:
        if reindex:
            _reindex(config)
        asyncio.run(_run(config, log_format))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot start the node: {exc}") from None


def _log_verification(assume_valid: bytes | None) -> None:
    """Say at start which library checks signatures (and warn when it is the slow one)."""
    from minichain.core import keys

    log = logging.getLogger("minichain.node")
    if keys.VERIFY_BACKEND == "coincurve":
        log.info("verifying signatures with %s", keys.backend_description())
    else:
        log.warning("verifying signatures with %s", keys.backend_description())
    if assume_valid is not None:
        log.warning("assumevalid: the signatures of block %s and its ancestors will not be checked",
                    assume_valid[::-1].hex())


def _reindex(config) -> None:
    """Bitcoin's -reindex: everything but the blocks rebuilt from the blocks, then start."""
    from minichain.chainstate import ChainState
    from minichain.node.node import open_store

    with open_store(config) as store:
        ChainState(store, config.params, reindex=True)


async def _run(config, log_format: str = "text") -> None:
    from minichain.node.logs import ready_line
    from minichain.node.node import Node

    node = Node(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, node.request_stop)
    try:
        await node.start()
    except BaseException:
        await node.stop()
        raise
    # One line a supervisor (the testnet, the tests) can read to learn the ports.
    text = (f"minichain node ready network={config.params.name} p2p={config.listen[0]}:{node.listen_port} "
            f"api={config.api[0] + ':' + str(node.api_port) if config.api else 'off'} "
            f"height={node.chain.height} pid={os.getpid()}")
    print(ready_line(text, log_format, p2p_port=node.listen_port, api_port=node.api_port, height=node.chain.height,
                     pid=os.getpid()), flush=True)
    await node.wait_stopped()
