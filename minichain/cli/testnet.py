"""``minichain testnet``: a local multi-node network on this machine."""

from __future__ import annotations

import click


@click.group()
def testnet() -> None:
    """Run a local multi-node network on this machine."""


@testnet.command("up")
@click.option("--nodes", default=4, show_default=True, type=click.IntRange(1, 64), help="How many node processes to start.")
def testnet_up(nodes: int) -> None:
    """Start NODES mining nodes on 127.0.0.1 and connect them.

    \b
    Example:
      minichain testnet up --nodes 4
    """
    raise click.ClickException(
        "not yet: the node and the local testnet are still being built "
        "(see the issue tracker); the consensus core and its tests are ready."
    )
