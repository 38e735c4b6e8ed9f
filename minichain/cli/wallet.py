"""``minichain wallet``: keys in a local 0600 file, coins on the chain, a node to ask.

Every subcommand takes the same options (after the subcommand's name):

    --wallet FILE   the key file (default DATADIR/wallet.json)   [env MINICHAIN_WALLET]
    --datadir DIR   (default ~/.minichain/NETWORK)                 [env MINICHAIN_DATADIR]
    --network NAME  testnet or regtest (default: the wallet's)     [env MINICHAIN_NETWORK]
    --node URL      the node's API (default http://127.0.0.1:8332) [env MINICHAIN_NODE]

An encrypted wallet (``wallet new --encrypt``, ``wallet encrypt``) asks for its
passphrase on the terminal (hidden) when a command needs a key, or reads it from
MINICHAIN_WALLET_PASSPHRASE; commands that need only its addresses do not ask.

Amounts are typed and shown in coins with 8 decimals; inside they are integer units.
"""

from __future__ import annotations

import json
import os

import click

from minichain.cli.common import (CommandError, console, datadir_option, default_datadir, handle_errors,
                                  json_option, make_client, node_option)
from minichain.wallet.amounts import AmountError, format_amount, parse_amount
from minichain.wallet.keyfile import DEFAULT_FILE_NAME, KeyFile, WalletFileError, peek

DEFAULT_NETWORK = "testnet"
PASSPHRASE_ENV = "MINICHAIN_WALLET_PASSPHRASE"


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=True))


def wallet_file_option(f):
    return click.option(
        "--wallet", "wallet_path", envvar="MINICHAIN_WALLET", default=None, metavar="FILE",
        type=click.Path(dir_okay=False),
        help="Key file to use (default DATADIR/wallet.json). [env MINICHAIN_WALLET]",
    )(f)


def wallet_network_option(f):
    return click.option(
        "--network", envvar="MINICHAIN_NETWORK", default=None, type=click.Choice(["testnet", "regtest"]),
        help="testnet or regtest (default: the network the wallet was made for, else testnet). [env MINICHAIN_NETWORK]",
    )(f)


def wallet_options(f):
    for decorate in (node_option, wallet_network_option, datadir_option, wallet_file_option):
        f = decorate(f)
    return f


def _peek_network(path: str) -> str | None:
    """The network recorded in an existing key file, without the full checks (those run
    when the file is opened for use)."""
    try:
        raw = peek(path)
        if raw is None:
            return None
        network = json.loads(raw).get("network")
        return network if isinstance(network, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def wallet_location(wallet_path: str | None, datadir: str | None, network: str | None) -> tuple[str, str]:
    """(key file path, network): explicit options first, then the file's own network."""
    if wallet_path is None:
        net = network or DEFAULT_NETWORK
        return os.path.join(datadir or default_datadir(net), DEFAULT_FILE_NAME), net
    return wallet_path, network or _peek_network(wallet_path) or DEFAULT_NETWORK


def open_keyfile(wallet_path: str | None, datadir: str | None, network: str | None) -> KeyFile:
    path, net = wallet_location(wallet_path, datadir, network)
    if wallet_path is None and datadir is None and network is None and not os.path.exists(path):
        # Nothing in testnet's datadir: perhaps the user's wallet is a regtest one.
        other = os.path.join(default_datadir("regtest"), DEFAULT_FILE_NAME)
        if os.path.exists(other):
            raise WalletFileError(f"no wallet at {path}, but there is a regtest wallet at {other}: add --network regtest")
    keyfile = KeyFile.load(path, passphrase=lambda: _passphrase(path))
    if keyfile.network != net:
        raise CommandError(f"wrong network: the wallet {path} is for {keyfile.network!r}, not {net!r}")
    return keyfile


def _passphrase(path: str) -> str:
    """The passphrase of an encrypted wallet, asked only when a key is needed: from the
    environment (for scripts), else typed on the terminal, not echoed. The prompt goes
    to stderr so that stdout (a txid, JSON) stays clean for $(...)."""
    return os.environ.get(PASSPHRASE_ENV) or click.prompt(f"passphrase for {path}", hide_input=True, err=True)


def _new_passphrase(path: str) -> str:
    passphrase = os.environ.get(PASSPHRASE_ENV) or click.prompt(
        f"new passphrase for {path}", hide_input=True, confirmation_prompt="repeat the passphrase", err=True)
    if not passphrase.strip():
        raise CommandError("the passphrase is empty or blank; choose one")
    return passphrase


def _encryption_note(keyfile: KeyFile) -> str:
    return f"encrypted with {keyfile.kdf_cost().describe()} and ChaCha20-Poly1305"


def open_wallet(wallet_path, datadir, network, node_url):
    from minichain.wallet.wallet import Wallet

    return Wallet(open_keyfile(wallet_path, datadir, network), make_client(node_url))


def _amount(ctx, param, value):
    if value is None:
        return None
    try:
        units = parse_amount(value)
    except AmountError as exc:
        raise click.BadParameter(str(exc)) from None
    if units == 0:
        raise click.BadParameter("the amount must be more than 0")
    return units


def _address(ctx, param, value):
    """Check the checksum and that the address is for a minichain network; the wallet
    checks it against its own network again before paying it."""
    from minichain import params as chain_params
    from minichain.core.keys import AddressError, b58check_decode, decode_address

    try:
        decode_address(value)
        version = b58check_decode(value)[0]
    except AddressError as exc:
        raise click.BadParameter(f"{value!r} is not a valid address: {exc}") from None
    ours = {p.address_version for p in chain_params.NETWORKS.values() if p.name != "main"}
    if version not in ours:
        other = " (a Bitcoin mainnet address)" if version == chain_params.main.address_version else ""
        raise click.BadParameter(f"{value!r} is an address for another network{other}: its version byte is "
                                 f"0x{version:02x}, minichain's testnet and regtest use 0x{min(ours):02x}")
    return value


@click.group()
def wallet() -> None:
    """Keys on this machine, coins on the chain: create a wallet, receive, send.

    The key file (default ~/.minichain/NETWORK/wallet.json, mode 0600) holds a seed from
    which every key is derived; back it up once. The node is asked only about
    addresses and is given only signed transactions: it never sees a private key.
    Exit codes: 0 ok, 1 refused or failed, 2 bad command line, 3 no node at the URL.

    With --encrypt (or later 'wallet encrypt') the seed is kept encrypted under a
    passphrase. Commands that sign ask for it on the terminal, or read it from
    MINICHAIN_WALLET_PASSPHRASE; balance, history, utxos and address do not need it.

    \b
    Example:
      minichain wallet new --network regtest
      minichain mine 101 --network regtest
      minichain wallet balance --network regtest
      minichain wallet send mq7se9wy2egettFxPbmn99cK8v5AFq55Lx 1.5 --network regtest
    """


@wallet.command("new")
@wallet_options
@click.option("--force", is_flag=True, help="Replace an existing wallet (the old file is kept aside, renamed).")
@click.option("--encrypt", is_flag=True,
              help=f"Encrypt the seed under a passphrase (asked twice, or read from {PASSPHRASE_ENV}).")
@json_option
@handle_errors
def wallet_new(wallet_path, datadir, network, node_url, force, encrypt, as_json):
    """Create a wallet: a new key file, readable only by you (mode 0600).

    Refuses to overwrite an existing wallet unless --force is given. Prints the first
    receiving address. Does not need a running node.

    With --encrypt the seed is sealed under a passphrase before anything is written
    (scrypt, ChaCha20-Poly1305): the key never reaches the disk in clear. The file keeps
    the wallet's addresses in clear, so balance, history and address need no passphrase.

    \b
    Example:
      minichain wallet new --network regtest
      minichain wallet new --wallet ~/bob.json --network regtest --encrypt
    """
    path, net = wallet_location(wallet_path, datadir, network)
    passphrase = _new_passphrase(path) if encrypt else None
    keyfile, kept = KeyFile.create(path, net, force=force, passphrase=passphrase)
    address = keyfile.next_address("receive")
    if as_json:
        _echo_json({"wallet": path, "network": net, "address": address, "replaced": kept, "encrypted": encrypt})
        return
    if kept:
        click.echo(f"the previous wallet was kept as {kept}", err=True)
    if encrypt:
        click.echo(f"created {net} wallet {path} (mode 0600, {_encryption_note(keyfile)}; back it up, and "
                   "remember the passphrase: without it the keys are lost)")
    else:
        click.echo(f"created {net} wallet {path} (mode 0600; back it up: it holds the seed of all its keys)")
    click.echo(f"receiving address: {address}")


@wallet.command("encrypt")
@wallet_options
@json_option
@handle_errors
def wallet_encrypt(wallet_path, datadir, network, node_url, as_json):
    """Encrypt an existing wallet's seed under a passphrase, in place.

    The passphrase is asked twice (hidden), or read from MINICHAIN_WALLET_PASSPHRASE.
    The encrypted file replaces the plaintext one atomically (a 0600 temporary file,
    fsync, rename): a crash leaves one or the other, never both. Every address and key
    stays the same. Copies of the old file (backups, wallet.json.replaced-*) still hold
    the seed in clear: delete them or keep them offline. Does not need a running node.

    \b
    Example:
      minichain wallet encrypt --network regtest
      MINICHAIN_WALLET_PASSPHRASE=... minichain wallet encrypt --wallet bob.json
    """
    keyfile = open_keyfile(wallet_path, datadir, network)
    if keyfile.encrypted:
        raise CommandError(f"the wallet {keyfile.path} is already encrypted")
    keyfile.encrypt(_new_passphrase(keyfile.path))
    if as_json:
        cost = keyfile.kdf_cost()
        _echo_json({"wallet": keyfile.path, "encrypted": True, "kdf": {"name": "scrypt", "n": cost.n, "r": cost.r,
                                                                        "p": cost.p}})
        return
    click.echo(f"{_encryption_note(keyfile)}: {keyfile.path}")
    click.echo("copies of the old file (backups, *.replaced-*) still hold its seed in clear: "
               "delete them or keep them offline", err=True)


@wallet.command("address")
@wallet_options
@click.option("--list", "list_all", is_flag=True, help="List every address handed out so far instead.")
@json_option
@handle_errors
def wallet_address(wallet_path, datadir, network, node_url, list_all, as_json):
    """Print a new receiving address (each call gives a fresh one).

    Does not need a running node. An encrypted wallet keeps a pool of 100 addresses
    ahead in clear; only when they are used up is the passphrase asked for (to refill it).

    \b
    Example:
      minichain wallet address --network regtest
      minichain wallet address --list --json
    """
    keyfile = open_keyfile(wallet_path, datadir, network)
    if list_all:
        rows = [{"chain": chain, "index": i, "address": addr} for chain, i, addr in keyfile.issued()]
        if as_json:
            _echo_json(rows)
            return
        from rich.table import Table

        table = Table(title=f"addresses of {keyfile.path}")
        for col in ("chain", "index", "address"):
            table.add_column(col, justify="right" if col == "index" else "left")
        for r in rows:
            table.add_row(r["chain"], str(r["index"]), r["address"])
        console().print(table)
        return
    address = keyfile.next_address("receive")
    if as_json:
        _echo_json({"address": address, "network": keyfile.network})
    else:
        click.echo(address)


@wallet.command("balance")
@wallet_options
@click.option("--min-conf", default=1, show_default=True, type=click.IntRange(0),
              help="Confirmations a coin needs to count as confirmed.")
@json_option
@handle_errors
def wallet_balance(wallet_path, datadir, network, node_url, min_conf, as_json):
    """Show the confirmed and unconfirmed balance.

    confirmed: spendable coins with at least --min-conf confirmations; unconfirmed: the
    effect of transactions in the node's mempool (and of coins with fewer
    confirmations); immature: newly mined coins, spendable after the coinbase maturity.

    \b
    Example:
      minichain wallet balance --min-conf 6
    """
    w = open_wallet(wallet_path, datadir, network, node_url)
    snap = w.snapshot(min_conf)
    bal = snap.balance()
    if as_json:
        out = {k: v for k, v in bal.items()}
        out.update({f"{k}_amount": format_amount(v) for k, v in bal.items()})
        out.update({"min_conf": min_conf, "height": snap.height, "network": snap.network})
        _echo_json(out)
        return
    from rich.table import Table

    table = Table(title=f"balance at height {snap.height} ({snap.network}, min-conf {min_conf})", show_header=False)
    table.add_column("what")
    table.add_column("coins", justify="right")
    notes = {"immature": f"mined, matures after {snap.maturity} blocks",
             "spendable": "what 'wallet send' can use now"}
    table.add_column("note")
    for key in ("confirmed", "unconfirmed", "immature", "total", "spendable"):
        table.add_row(key, format_amount(bal[key]), notes.get(key, ""))
    console().print(table)


# Unknown options are handed to the arguments, so that "-1" reaches the amount parser
# and is refused as negative instead of as an unknown option.
@wallet.command("send", context_settings={"ignore_unknown_options": True})
@wallet_options
@click.argument("address", callback=_address)
@click.argument("amount", callback=_amount)
@click.option("--fee-rate", default=1, show_default=True, type=click.IntRange(0, 10_000),
              help="Fee in units (10^-8 coin) per byte of transaction.")
@click.option("--min-conf", default=1, show_default=True, type=click.IntRange(0),
              help="Spend only coins with at least this many confirmations (0 also spends pending change).")
@click.option("--max-fee", callback=_amount, metavar="AMOUNT", show_default="0.1, Bitcoin Core's -maxtxfee",
              help="Refuse to send if the fee would be more than this many coins (a guard against a "
                   "mistyped --fee-rate on a wallet of many small coins).")
@json_option
@handle_errors
def wallet_send(wallet_path, datadir, network, node_url, address, amount, fee_rate, min_conf, max_fee, as_json):
    """Send AMOUNT coins to ADDRESS and print the transaction id.

    Picks coins (mature, confirmed, not already being spent), sends the change to a
    fresh address of this wallet, signs on this machine and hands the signed
    transaction to the node. An encrypted wallet's passphrase is read from
    MINICHAIN_WALLET_PASSPHRASE, or asked for on the terminal (hidden) before signing.

    \b
    Example:
      minichain wallet send mq7se9wy2egettFxPbmn99cK8v5AFq55Lx 1.5
      minichain wallet send mq7se9wy2egettFxPbmn99cK8v5AFq55Lx 0.001 --fee-rate 5
    """
    w = open_wallet(wallet_path, datadir, network, node_url)
    limit = {} if max_fee is None else {"max_fee": max_fee}     # else the wallet's DEFAULT_MAX_FEE
    result = w.send(address, amount, fee_rate=fee_rate, min_conf=min_conf, **limit)
    if as_json:
        _echo_json(result.to_json())
        return
    s = result.selection
    change = f", change {format_amount(s.change)} to {result.change_address}" if s.change else ""
    click.echo(f"sent {format_amount(s.amount)} to {address}: fee {format_amount(s.fee)} "
               f"for {result.tx.size} bytes, {len(s.coins)} input(s){change}", err=True)
    click.echo(result.txid)


@wallet.command("history")
@wallet_options
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1),
              help="Show at most this many transactions, newest first.")
@json_option
@handle_errors
def wallet_history(wallet_path, datadir, network, node_url, limit, as_json):
    """List the wallet's transactions, newest first, with confirmations.

    The change of each is its net effect on the wallet (received minus spent, fee
    included).

    \b
    Example:
      minichain wallet history --limit 10
    """
    from minichain.wallet.wallet import history_json

    w = open_wallet(wallet_path, datadir, network, node_url)
    snap = w.snapshot(1, history=limit)
    rows = history_json(snap.history)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no transactions yet")
        return
    from rich.table import Table

    count = f"{len(rows)} transactions" if snap.history_complete else f"the newest {len(rows)} transactions"
    table = Table(title=f"history at height {snap.height} ({count})")
    table.add_column("txid")
    table.add_column("height", justify="right")
    table.add_column("confirmations", justify="right")
    table.add_column("change", justify="right")
    for r in rows:
        table.add_row(r["txid"], "pending" if r["height"] is None else str(r["height"]), str(r["confirmations"]),
                      r["amount"])
    console().print(table)


@wallet.command("utxos")
@wallet_options
@click.option("--min-conf", default=1, show_default=True, type=click.IntRange(0),
              help="Confirmations a coin needs to be marked spendable.")
@json_option
@handle_errors
def wallet_utxos(wallet_path, datadir, network, node_url, min_conf, as_json):
    """List the wallet's unspent coins and whether each can be spent now.

    \b
    Example:
      minichain wallet utxos --json
    """
    w = open_wallet(wallet_path, datadir, network, node_url)
    snap = w.snapshot(min_conf)
    if as_json:
        _echo_json([u.to_json() for u in snap.utxos])
        return
    if not snap.utxos:
        click.echo("no coins yet")
        return
    from rich.table import Table

    table = Table(title=f"coins at height {snap.height} ({len(snap.utxos)})")
    for col, right in (("outpoint", False), ("coins", True), ("address", False), ("conf", True), ("state", False)):
        table.add_column(col, justify="right" if right else "left")
    spendable = {(u.txid, u.vout) for u in snap.spendable()}
    for u in snap.utxos:
        if (u.txid, u.vout) in spendable:
            state = "spendable"
        elif u.spent_in_mempool:
            state = f"being spent by {u.spent_in_mempool[:16]}…"
        elif not u.mature:
            state = f"immature ({u.blocks_to_maturity(snap.maturity)} more blocks)"
        else:
            state = "unconfirmed" if u.height is None else f"needs {min_conf} conf"
        table.add_row(f"{u.txid}:{u.vout}", format_amount(u.value), u.address, str(u.confirmations), state)
    console().print(table)
