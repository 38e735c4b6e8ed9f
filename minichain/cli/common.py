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


# -- options and errors of the client commands (wallet, chain, mine) ------------------------

# Exit codes, the same for every client command (documented in ``minichain --help``):
EXIT_FAILURE = 1      # the request was understood but cannot be done (funds, refused tx, key file)
EXIT_USAGE = 2        # a mistake in the command line itself (click's own code for usage errors)
EXIT_UNREACHABLE = 3  # no node answered at the URL


class CommandError(click.ClickException):
    """A plain-language error: printed as ``Error: message`` on stderr, no traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def node_option(f):
    from minichain.wallet.client import DEFAULT_NODE_URL

    return click.option(
        "--node", "node_url", envvar="MINICHAIN_NODE", default=DEFAULT_NODE_URL, show_default=True, metavar="URL",
        help="The node's REST API (HOST:PORT or http://HOST:PORT). [env MINICHAIN_NODE]",
    )(f)


def json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table, for scripts.")(f)


def optional_network_option(f):
    """``--network`` for client commands: when it is given, the node (and the wallet) must
    be on that chain; when it is not, they are taken as they are."""
    return click.option(
        "--network", envvar="MINICHAIN_NETWORK", default=None, type=click.Choice(NETWORK_CHOICES),
        help="Expected chain; refuse a node or wallet on another one. [env MINICHAIN_NETWORK]",
    )(f)


def make_client(node_url: str, *, token: str | None = None, token_hint: str | None = None):
    from minichain.wallet.client import NodeClient

    try:
        return NodeClient(node_url, token=token, token_hint=token_hint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--node") from None


def check_node_network(client, network: str | None) -> dict:
    """The node's status; a :class:`CommandError` if ``network`` is given and differs."""
    status = client.status()
    if network is not None and status.get("network") != network:
        raise CommandError(f"wrong network: the node at {client.url} follows {status.get('network')!r}, "
                           f"not {network!r} (point --node at a {network} node)")
    return status


def handle_errors(f):
    """Turn the errors of the layers below into plain messages and exit codes."""
    import functools

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from minichain.wallet.amounts import AmountError
        from minichain.wallet.client import NodeError, NodeRequestError, NodeUnreachable
        from minichain.wallet.keyfile import WalletFileError
        from minichain.wallet.wallet import WalletError

        try:
            return f(*args, **kwargs)
        except NodeUnreachable as exc:
            raise CommandError(str(exc), EXIT_UNREACHABLE) from None
        except NodeRequestError as exc:
            raise CommandError(f"the node said: {exc.message}") from None
        except (NodeError, WalletFileError, WalletError) as exc:
            raise CommandError(str(exc)) from None
        except AmountError as exc:
            raise click.BadParameter(str(exc)) from None

    return wrapper


def console(stderr: bool = False):
    """A rich console; when the output is not a terminal, wide enough that a table of
    64-digit hashes is not folded, and without colour codes."""
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(file=stream, width=200, no_color=True, highlight=False, soft_wrap=True)
