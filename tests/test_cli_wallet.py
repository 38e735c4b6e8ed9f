"""``minichain wallet`` through click's runner, against a real node API in this process:
create, mine to it, wait for maturity, send, and watch both wallets change; and every
user mistake ends in one plain sentence and a non-zero exit code, never a traceback."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
from click.testing import CliRunner

from minichain import params
from minichain.cli import main
from minichain.core.keys import PrivateKey, encode_address
from minichain.params import COIN
from minichain.wallet.coinselect import fee_for
from minichain.wallet.keyfile import KeyFile
from tests.test_cli_support import InProcessNode

P = params.regtest
MATURITY = P.coinbase_maturity
SUBSIDY = P.initial_subsidy
OUTSIDER = PrivateKey(777).public_key.address(P.address_version)


@pytest.fixture
def node(tmp_path):
    n = InProcessNode(str(tmp_path / "node"))
    yield n
    n.close()


@pytest.fixture
def cli(tmp_path, node, monkeypatch):
    """Run ``minichain ARGS`` in-process; returns click's Result. Defaults point at the
    test node and keep every file under tmp_path."""
    monkeypatch.setenv("MINICHAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINICHAIN_NODE", node.url)
    monkeypatch.delenv("MINICHAIN_NETWORK", raising=False)
    monkeypatch.delenv("MINICHAIN_WALLET", raising=False)
    monkeypatch.delenv("MINICHAIN_DATADIR", raising=False)
    monkeypatch.delenv("MINICHAIN_WALLET_PASSPHRASE", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0, input: str | None = None):
        result = runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"minichain {' '.join(args)} raised {result.exception!r}\n{result.output}") \
                from result.exception
        assert "Traceback" not in result.output
        assert result.exit_code == code, f"exit {result.exit_code} != {code} for {args}:\n{result.output}"
        return result

    run.tmp = tmp_path
    return run


def new_wallet(cli, name: str) -> tuple[str, str]:
    path = str(cli.tmp / f"{name}.json")
    out = cli("wallet", "new", "--wallet", path, "--network", "regtest", "--json").stdout
    data = json.loads(out)
    assert data["wallet"] == path and data["network"] == "regtest"
    return path, data["address"]


def balance(cli, path: str, min_conf: int = 1) -> dict:
    return json.loads(cli("wallet", "balance", "--wallet", path, "--min-conf", min_conf, "--json").stdout)


def history(cli, path: str) -> list[dict]:
    return json.loads(cli("wallet", "history", "--wallet", path, "--limit", "1000", "--json").stdout)


def test_alice_mines_waits_for_maturity_and_pays_bob_both_wallets_follow_the_confirmations(cli, node):
    alice, alice_addr = new_wallet(cli, "alice")
    bob, bob_addr = new_wallet(cli, "bob")
    assert stat.S_IMODE(os.stat(alice).st_mode) == 0o600

    # A coinbase can be spent in the block MATURITY above its own (Bitcoin: COINBASE_MATURITY),
    # that is once it has MATURITY confirmations.
    node.mine(MATURITY - 1, alice_addr)
    b = balance(cli, alice)
    assert b["immature"] == (MATURITY - 1) * SUBSIDY and b["confirmed"] == 0 and b["spendable"] == 0
    # Not mature yet: the error names the shortfall and when coins mature.
    err = cli("wallet", "send", "--wallet", alice, bob_addr, "1.5", code=1).stderr
    assert "insufficient funds" in err and "short by 1.5000" in err and "matures" in err and "in 1 block" in err

    node.mine(1, OUTSIDER)  # the first coinbase now has MATURITY confirmations
    b = balance(cli, alice)
    assert b["confirmed"] == SUBSIDY and b["spendable"] == SUBSIDY
    assert b["immature"] == (MATURITY - 2) * SUBSIDY
    assert b["confirmed_amount"] == "50.00000000"

    sent = cli("wallet", "send", "--wallet", alice, bob_addr, "1.5", "--fee-rate", "2")
    txid = sent.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", txid)
    assert "sent 1.50000000 to " + bob_addr in sent.stderr
    assert txid in node.mempool_txids()
    fee = fee_for(1, 2, 2)

    # Pending: Bob sees it unconfirmed, Alice sees the amount and the fee leave.
    b_bob = balance(cli, bob)
    assert b_bob["confirmed"] == 0 and b_bob["unconfirmed"] == 150_000_000
    b_alice = balance(cli, alice)
    assert b_alice["unconfirmed"] == -(150_000_000 + fee)
    assert b_alice["spendable"] == 0  # the one mature coin is being spent
    assert history(cli, bob) == [{"txid": txid, "height": None, "confirmations": 0, "delta": 150_000_000,
                                  "amount": "+1.50000000"}]
    assert history(cli, alice)[0] == {"txid": txid, "height": None, "confirmations": 0,
                                      "delta": -(150_000_000 + fee), "amount": f"-1.5000{fee:04d}"}

    # One block: confirmed for both, the change has come back to Alice.
    node.mine(1, OUTSIDER)
    b_bob = balance(cli, bob)
    assert b_bob["confirmed"] == 150_000_000 and b_bob["unconfirmed"] == 0
    b_alice = balance(cli, alice)
    # The second coinbase matured with this block too.
    assert b_alice["confirmed"] == 2 * SUBSIDY - 150_000_000 - fee and b_alice["unconfirmed"] == 0
    assert history(cli, bob)[0]["confirmations"] == 1
    h_alice = history(cli, alice)
    assert h_alice[0]["txid"] == txid and h_alice[0]["confirmations"] == 1 and h_alice[0]["height"] == MATURITY + 1
    assert len(h_alice) == MATURITY  # the payment and Alice's coinbases
    assert [h["delta"] for h in h_alice[1:]] == [SUBSIDY] * (MATURITY - 1)
    assert [h["height"] for h in h_alice[1:]] == list(range(MATURITY - 1, 0, -1))

    # With --min-conf 3 the fresh coins do not count as confirmed yet; two blocks later they do.
    b_bob3 = balance(cli, bob, min_conf=3)
    assert b_bob3["confirmed"] == 0 and b_bob3["unconfirmed"] == 150_000_000
    node.mine(2, OUTSIDER)
    assert balance(cli, bob, min_conf=3)["confirmed"] == 150_000_000
    assert history(cli, bob)[0]["confirmations"] == 3

    # Bob can spend what he got; Alice's change went to a fresh address of hers.
    kf = KeyFile.load(alice)
    assert kf.counts["change"] == 1
    utxos = json.loads(cli("wallet", "utxos", "--wallet", alice, "--json").stdout)
    change = [u for u in utxos if u["address"] == kf.address("change", 0)]
    assert len(change) == 1 and change[0]["value"] == SUBSIDY - 150_000_000 - fee
    txid2 = cli("wallet", "send", "--wallet", bob, alice_addr, "1", "--json").stdout
    assert json.loads(txid2)["change"] == 50_000_000 - fee_for(1, 2, 1)


def test_human_output_tables(cli, node):
    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY, addr)  # the first coinbase is spendable, the rest are not
    out = cli("wallet", "balance", "--wallet", alice).stdout
    assert re.search(r"confirmed\s+│\s+50\.00000000", out)
    assert re.search(r"immature\s+│\s+4950\.00000000", out)
    out = cli("wallet", "utxos", "--wallet", alice).stdout
    assert out.count("spendable") == 1 and "immature (1 more blocks)" in out and "immature (99 more blocks)" in out
    out = cli("wallet", "history", "--wallet", alice, "--limit", "3").stdout
    assert "+50.00000000" in out and out.count("+50.00000000") == 3
    listing = cli("wallet", "address", "--wallet", alice, "--list").stdout
    assert addr in listing and "receive" in listing


def test_wallet_address_gives_a_fresh_address_each_time_without_a_node(cli, tmp_path):
    alice, first = new_wallet(cli, "alice")
    a2 = cli("wallet", "address", "--wallet", alice, "--node", "127.0.0.1:1").stdout.strip()
    a3 = json.loads(cli("wallet", "address", "--wallet", alice, "--json").stdout)["address"]
    assert len({first, a2, a3}) == 3
    listed = json.loads(cli("wallet", "address", "--wallet", alice, "--list", "--json").stdout)
    assert [r["address"] for r in listed] == [first, a2, a3]


def test_default_wallet_lives_in_the_datadir_and_the_network_comes_from_the_file(cli, tmp_path):
    out = cli("wallet", "new", "--network", "regtest").stdout
    path = tmp_path / "home" / "regtest" / "wallet.json"
    assert str(path) in out and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # Without --network the default is testnet; the error points at the regtest wallet.
    err = cli("wallet", "balance", code=1).stderr
    assert "regtest wallet" in err and "--network regtest" in err
    cli("wallet", "balance", "--network", "regtest")
    # With --wallet, the file's network is used.
    cli("wallet", "balance", "--wallet", str(path))


# -- every user mistake: its message and exit code ------------------------------------------


def test_refuses_to_overwrite_a_wallet_without_force(cli):
    alice, addr = new_wallet(cli, "alice")
    err = cli("wallet", "new", "--wallet", alice, "--network", "regtest", code=1).stderr
    assert "already exists" in err and "--force" in err
    assert KeyFile.load(alice).address("receive", 0) == addr
    out = cli("wallet", "new", "--wallet", alice, "--network", "regtest", "--force")
    assert "kept as" in out.stderr
    assert KeyFile.load(alice).address("receive", 0) != addr


def test_bad_address_checksum(cli):
    alice, addr = new_wallet(cli, "alice")
    bad = addr[:-1] + ("2" if addr[-1] != "2" else "3")
    err = cli("wallet", "send", "--wallet", alice, bad, "1", code=2).stderr
    assert "bad checksum" in err and "not a valid address" in err
    err = cli("wallet", "send", "--wallet", alice, "0OIl", "1", code=2).stderr
    assert "invalid Base58 character" in err


def test_address_of_another_network(cli):
    alice, _ = new_wallet(cli, "alice")
    mainnet = encode_address(bytes(20), params.main.address_version)
    err = cli("wallet", "send", "--wallet", alice, mainnet, "1", code=2).stderr
    assert "another network" in err and "Bitcoin mainnet" in err


@pytest.mark.parametrize("amount, words", [
    ("1.123456789", "9 decimals"), ("-1", "negative"), ("abc", "not an amount"), ("0", "more than 0"),
    ("30000000", "21,000,000"),
])
def test_bad_amounts(cli, amount, words):
    alice, _ = new_wallet(cli, "alice")
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, amount, code=2).stderr
    assert words in err


def test_insufficient_funds_states_the_shortfall(cli, node):
    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY + 1, addr)  # two mature coins: 100 coins spendable
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "150", code=1).stderr
    fee = fee_for(2, 1, 1)
    assert "insufficient funds" in err
    assert f"needs {(150 * COIN + fee) // COIN}.{(150 * COIN + fee) % COIN:08d}" in err
    assert "100.00000000 is spendable" in err
    assert f"short by 50.{fee:08d}" in err


def test_node_unreachable_names_the_url(cli):
    alice, _ = new_wallet(cli, "alice")
    for cmd in (["wallet", "balance", "--wallet", alice], ["wallet", "send", "--wallet", alice, OUTSIDER, "1"],
                ["wallet", "history", "--wallet", alice], ["wallet", "utxos", "--wallet", alice]):
        err = cli(*cmd, "--node", "127.0.0.1:9", code=3).stderr
        assert "cannot reach the node at http://127.0.0.1:9" in err and "connection refused" in err


def test_bad_node_url(cli):
    alice, _ = new_wallet(cli, "alice")
    err = cli("wallet", "balance", "--wallet", alice, "--node", "ftp://x", code=2).stderr
    assert "http://" in err


def test_wrong_network_between_wallet_and_node(cli, tmp_path):
    path = str(tmp_path / "tn.json")
    cli("wallet", "new", "--wallet", path, "--network", "testnet")
    err = cli("wallet", "balance", "--wallet", path, code=1).stderr
    assert "wrong network" in err and "'regtest'" in err and "'testnet'" in err
    # And a wallet opened as the other network.
    err = cli("wallet", "balance", "--wallet", path, "--network", "regtest", code=1).stderr
    assert "wrong network" in err and "is for 'testnet'" in err


def test_key_file_others_can_read_is_refused(cli):
    alice, _ = new_wallet(cli, "alice")
    os.chmod(alice, 0o644)
    err = cli("wallet", "balance", "--wallet", alice, code=1).stderr
    assert "mode 0644" in err and f"chmod 600 {alice}" in err
    err = cli("wallet", "address", "--wallet", alice, code=1).stderr
    assert "mode 0644" in err


def test_corrupt_key_file_is_refused(cli):
    alice, _ = new_wallet(cli, "alice")
    with open(alice, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace('"receive": 1', '"receive": 7'))
    err = cli("wallet", "balance", "--wallet", alice, code=1).stderr
    assert "damaged" in err and "checksum" in err


def test_missing_wallet(cli, tmp_path):
    err = cli("wallet", "balance", "--wallet", str(tmp_path / "none.json"), code=1).stderr
    assert "no wallet at" in err and "wallet new" in err


def test_a_coin_already_being_spent_is_not_offered_again(cli, node):
    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY, addr)  # exactly one spendable coin
    cli("wallet", "send", "--wallet", alice, OUTSIDER, "1")
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", code=1).stderr
    assert "insufficient funds" in err and "50.00000000 is already being spent" in err
    # Its change can be spent before it confirms when asked to.
    cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", "--min-conf", "0")


def test_node_refusal_is_reported_in_its_words(cli, node, monkeypatch):
    """A wallet that believed a coin was free (here: told so by a patch) builds a double
    spend; the node's refusal, with its reason, is what the user reads."""
    from minichain.wallet import wallet as wallet_mod

    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY, addr)
    cli("wallet", "send", "--wallet", alice, OUTSIDER, "1")
    monkeypatch.setattr(wallet_mod.Snapshot, "spendable",
                        lambda self: [u for u in self.utxos if u.mature and u.height is not None])
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "2", code=1).stderr
    assert "the node refused the transaction: txn-mempool-conflict" in err


def test_no_private_key_or_seed_in_any_output(cli, node):
    alice, addr = new_wallet(cli, "alice")
    bob, bob_addr = new_wallet(cli, "bob")
    node.mine(MATURITY + 1, addr)
    outputs = []
    for args in (["wallet", "address", "--wallet", alice], ["wallet", "address", "--wallet", alice, "--list"],
                 ["wallet", "address", "--wallet", alice, "--list", "--json"],
                 ["wallet", "balance", "--wallet", alice], ["wallet", "balance", "--wallet", alice, "--json"],
                 ["wallet", "send", "--wallet", alice, bob_addr, "2"],
                 ["wallet", "send", "--wallet", alice, bob_addr, "0.5", "--min-conf", "0", "--json"],
                 ["wallet", "utxos", "--wallet", alice], ["wallet", "utxos", "--wallet", alice, "--json"],
                 ["wallet", "history", "--wallet", alice], ["wallet", "history", "--wallet", alice, "--json"]):
        r = cli(*args)
        outputs.append(r.output)
    text = "\n".join(outputs)
    kf = KeyFile.load(alice)
    secrets = [kf._seed.hex()] + [kf.key(c, i).to_bytes().hex() for c, i, _ in kf.issued()]
    for s in secrets:
        assert s not in text and s.upper() not in text
    assert kf.counts["change"] == 2  # both sends made change (the second spent the first's)


def test_every_command_has_help_with_an_example(cli):
    from click import Group

    def walk(cmd, path):
        yield path, cmd
        if isinstance(cmd, Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, path + [name])

    for path, cmd in walk(main, []):
        if path[:1] == ["sim"] or path[:1] == ["testnet"] or path[:1] == ["node"]:
            continue  # other groups' own tests
        out = cli(*path, "--help").stdout
        assert "Example" in out, f"minichain {' '.join(path)} --help has no example"


def test_a_node_that_goes_away_before_the_submit_is_unreachable_not_a_refusal(cli, node, monkeypatch):
    from minichain.wallet.client import NodeClient, NodeUnreachable

    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY, addr)

    def gone(self, raw_hex):
        raise NodeUnreachable(self.url, "connection refused")

    monkeypatch.setattr(NodeClient, "submit_tx", gone)
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", code=3).stderr
    assert "cannot reach the node" in err and "refused the transaction" not in err


def test_balance_utxos_and_history_of_an_address_with_ten_thousand_entries(cli, node, big_address):
    """The wallet pages through the node's lists: every coin and every entry, and the
    balance the chain builder computed on its own."""
    node.deliver(big_address.blocks)
    w = big_address.wallet_path
    tip = big_address.height
    mature = [(v, h, cb) for v, h, cb in big_address.coins.values() if not cb or tip + 1 - h >= MATURITY]
    assert big_address.history > 10_000 and len(big_address.coins) > 3 * 1000  # more than three pages

    bal = json.loads(cli("wallet", "balance", "--wallet", w, "--json").stdout)
    assert bal["confirmed"] == sum(v for v, _, _ in mature) == bal["spendable"]
    assert bal["immature"] == big_address.balance - bal["confirmed"] > 0
    assert bal["height"] == tip and bal["unconfirmed"] == 0

    utxos = json.loads(cli("wallet", "utxos", "--wallet", w, "--json").stdout)
    assert {(u["txid"], u["vout"]): (u["value"], u["height"], u["coinbase"]) for u in utxos} == {
        (op.txid[::-1].hex(), op.index): coin for op, coin in big_address.coins.items()}
    assert len(utxos) == len(big_address.coins)

    history = json.loads(cli("wallet", "history", "--wallet", w, "--limit", "20000", "--json").stdout)
    assert len(history) == len({h["txid"] for h in history}) == big_address.history
    assert sum(h["delta"] for h in history) == big_address.balance
    newest = json.loads(cli("wallet", "history", "--wallet", w, "--limit", "5", "--json").stdout)
    assert newest == history[:5] and all(h["height"] == tip for h in newest)
    table = cli("wallet", "history", "--wallet", w, "--limit", "5").stdout
    assert "the newest 5 transactions" in table


def test_a_fee_above_the_limit_is_refused_before_anything_is_sent(cli, node):
    """Before: ``--fee-rate 10000`` on a wallet of many coins paid whatever it came to."""
    alice, addr = new_wallet(cli, "alice")
    node.mine(MATURITY + 6, addr)  # seven mature coins of 50
    fee = fee_for(7, 2, 10_000)    # 320 coins need all seven
    assert fee > COIN // 10, "the case must cross the default limit of 0.1"
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "320", "--fee-rate", "10000", code=1).stderr
    assert f"the fee would be {fee // COIN}.{fee % COIN:08d}" in err
    assert "more than the limit of 0.10000000" in err and "nothing was sent" in err
    # A lower limit guards a cheaper send, too.
    small = fee_for(1, 2, 1_000)
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", "--fee-rate", "1000",
              "--max-fee", "0.00001", code=1).stderr
    assert f"the fee would be 0.{small:08d}" in err and "limit of 0.00001000" in err
    # Nothing was submitted or reserved: the same coins pay the same send once allowed.
    assert balance(cli, alice, 0)["spendable"] == balance(cli, alice)["spendable"]
    txid = cli("wallet", "send", "--wallet", alice, OUTSIDER, "320", "--fee-rate", "10000", "--max-fee", "1").stdout
    assert re.fullmatch(r"[0-9a-f]{64}\n", txid)


def test_a_fifo_as_the_wallet_is_refused_not_waited_on(cli, tmp_path):
    """Before: ``--wallet`` naming a FIFO hung for ever in open(), waiting for a writer."""
    import subprocess
    import sys

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)
    proc = subprocess.run([sys.executable, "-m", "minichain", "wallet", "balance", "--wallet", str(fifo)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "not a regular file" in proc.stderr and "Traceback" not in proc.stderr
