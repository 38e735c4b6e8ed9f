"""``minichain mine N``: have a running node mine N blocks now (Bitcoin: generatetoaddress).

The node does the hashing; this command asks for the blocks in small batches through
the control endpoint (``POST /api/control/generate``, authorised by the token in the
node's ``<datadir>/.cookie``) so that a progress bar can follow them. A batch is sized
to take about a quarter of a second: one block at a time on testnet difficulty, dozens
at a time on regtest, where a block is instant.
"""

from __future__ import annotations

import json
import os
import time

import click

from minichain.cli.common import (CommandError, console, datadir_option, default_datadir,
                                  handle_errors, json_option, make_client, node_option)
from minichain.wallet.client import COOKIE_FILE, read_cookie

BATCH_SECONDS = 0.25
MAX_BATCH = 50


@click.command("mine")
@click.argument("blocks", type=click.IntRange(1, 100_000))
@click.option("--address", metavar="ADDRESS", default=None,
              help="Address the block rewards pay (default: a new address of your wallet, see --wallet).")
@click.option("--wallet", "wallet_path", envvar="MINICHAIN_WALLET", default=None, metavar="FILE",
              type=click.Path(dir_okay=False), help="Wallet to take an address from when --address is not given.")
@click.option("--network", envvar="MINICHAIN_NETWORK", default=None, type=click.Choice(["testnet", "regtest"]),
              help="Expected chain (default: whatever the node follows). [env MINICHAIN_NETWORK]")
@datadir_option
@node_option
@json_option
@handle_errors
def mine(blocks, address, wallet_path, network, datadir, node_url, as_json):
    """Have the node at --node mine BLOCKS blocks now, paying --address.

    Needs the node's control token, which it writes to DATADIR/.cookie: give the node's
    --datadir if it is not the default. Shows a progress bar; Ctrl-C stops after the
    batch under way. Exit codes: 0 ok, 1 refused or failed, 2 bad command line, 3 no
    node at the URL.

    \b
    Examples:
      minichain mine 101 --network regtest        # pays a new address of your wallet
      minichain mine 10 --address mq7se9wy2egettFxPbmn99cK8v5AFq55Lx --node 127.0.0.1:18443
    """
    from minichain.core.keys import AddressError, decode_address
    from minichain import params as chain_params

    probe = make_client(node_url)
    status = probe.status()
    node_network = status.get("network")
    if network is not None and node_network != network:
        raise CommandError(f"wrong network: the node at {probe.url} follows {node_network!r}, not {network!r}")
    net = network or node_network
    if net not in chain_params.NETWORKS:
        raise CommandError(f"the node at {probe.url} reports an unknown network {node_network!r}")
    if address is None:
        from minichain.cli.wallet import open_keyfile
        from minichain.wallet.keyfile import WalletFileError

        try:
            keyfile = open_keyfile(wallet_path, datadir, net)
        except WalletFileError as exc:
            raise CommandError(f"{exc}; or say where the coins go with --address ADDRESS") from None
        address = keyfile.next_address("receive")
        click.echo(f"mining to {address}, a new address of the wallet {keyfile.path}", err=True)
    else:
        try:
            decode_address(address, chain_params.by_name(net).address_version)
        except AddressError as exc:
            raise click.BadParameter(f"{address!r} is not a valid {net} address: {exc}", param_hint="--address") from None

    node_datadir = datadir or default_datadir(net)
    cookie = os.path.join(node_datadir, COOKIE_FILE)
    token = read_cookie(node_datadir)
    if token is None:
        raise CommandError(f"cannot read the node's control token at {cookie}: is the node's data directory "
                           f"{node_datadir}? If not, pass its --datadir.")
    client = make_client(node_url, token=token, token_hint=cookie)

    hashes: list[str] = []
    height = status["height"]
    stopped = False
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    batch = 1
    with Progress(TextColumn("mining"), BarColumn(), MofNCompleteColumn(), TextColumn("blocks"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console(stderr=True),
                  transient=False) as progress:
        task = progress.add_task("mine", total=blocks)
        try:
            while len(hashes) < blocks:
                n = min(batch, blocks - len(hashes))
                started = time.monotonic()
                result = client.generate(n, address)
                took = time.monotonic() - started
                if not result["blocks"]:
                    raise CommandError("the node mined no blocks (is it shutting down?)")
                hashes.extend(result["blocks"])
                height = result["height"]
                progress.update(task, completed=len(hashes))
                # Aim each request at BATCH_SECONDS so the bar moves smoothly.
                per_block = took / len(result["blocks"])
                batch = max(1, min(MAX_BATCH, int(BATCH_SECONDS / per_block) if per_block > 0 else MAX_BATCH))
        except KeyboardInterrupt:
            stopped = True
        except Exception:
            if hashes:  # say what was done before the failure
                click.echo(f"mined {len(hashes)} of {blocks} blocks before the error below", err=True)
            raise
    if as_json:
        click.echo(json.dumps({"blocks": hashes, "height": height, "address": address, "complete": not stopped},
                              indent=1, sort_keys=True))
    else:
        click.echo(f"mined {len(hashes)} block(s) to {address}; the tip is now at height {height}")
    if stopped:
        raise CommandError(f"interrupted after {len(hashes)} of {blocks} blocks", 130)
