"""Options and helpers shared by the command groups."""

from __future__ import annotations

import os

import click

from minichain import params as chain_params

NETWORK_CHOICES = ["testnet", "regtest"]


def default_datadir(network: str) -> str:
    base = os.environ.get("MINICHAIN_HOME") or os.path.join(os.path.expanduser("~"), ".minichain")
    return os.path.join(base, network)


def network_option(f):
    return click.option(
        "--network", envvar="MINICHAIN_NETWORK", default="testnet", show_default=True,
        type=click.Choice(NETWORK_CHOICES), help="Which chain: testnet (seconds-scale blocks) or regtest (instant blocks). [env MINICHAIN_NETWORK]",
    )(f)


def datadir_option(f):
    return click.option(
        "--datadir", envvar="MINICHAIN_DATADIR", default=None, type=click.Path(file_okay=False),
        help="Data directory (default ~/.minichain/NETWORK). [env MINICHAIN_DATADIR]",
    )(f)


def resolve(network: str, datadir: str | None) -> tuple[chain_params.Params, str]:
    return chain_params.by_name(network), datadir or default_datadir(network)
