"""The ``minichain`` command line (click).

Each command group lives in its own module of this package (``cli/testnet.py``,
``cli/sim.py``, ...) and is registered below; the groups call into the layers beneath
and translate their errors into plain messages with a non-zero exit code.
"""

from __future__ import annotations

import click

from minichain import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="minichain")
def main() -> None:
    """minichain: a hackable proof-of-work node and a laboratory for consensus.

    \b
    Example:
      minichain testnet up --nodes 4
    """


def _register() -> None:
    from minichain.cli.bench import bench
    from minichain.cli.chain import chain
    from minichain.cli.mine import mine
    from minichain.cli.node import node
    from minichain.cli.sim import sim
    from minichain.cli.testnet import testnet
    from minichain.cli.wallet import wallet

    for group in (node, mine, wallet, chain, testnet, sim, bench):
        main.add_command(group)


_register()
