"""The wallet and the client commands as a person runs them: real ``minichain``
processes against real node processes that mine with the compiled kernel.

alice mines 101 blocks to her wallet with ``minichain mine``, pays bob with
``minichain wallet send``, and both wallets' balances and histories follow the
confirmations; every user mistake prints its sentence and exits non-zero with no
traceback; no private key appears in any output or in the node's log.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.params import COIN
from minichain.wallet.keyfile import KeyFile
from tests.e2e.harness import ROOT

pytestmark = pytest.mark.slow

P = params.regtest
OUTSIDER = PrivateKey(5).public_key.address(P.address_version)


class Cli:
    def __init__(self, home: str, node_url: str | None = None) -> None:
        self.env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
                        MINICHAIN_HOME=home)
        for var in ("MINICHAIN_NETWORK", "MINICHAIN_WALLET", "MINICHAIN_DATADIR", "MINICHAIN_NODE"):
            self.env.pop(var, None)
        if node_url:
            self.env["MINICHAIN_NODE"] = node_url
        self.transcript: list[str] = []

    def __call__(self, *args: str, code: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "minichain", *map(str, args)], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
        self.transcript += [proc.stdout, proc.stderr]
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == code, f"minichain {' '.join(map(str, args))}: exit {proc.returncode} != {code}\n" \
                                        f"stdout: {proc.stdout}\nstderr: {proc.stderr}"
        return proc

    def json(self, *args: str) -> dict | list:
        return json.loads(self(*args, "--json").stdout)


def test_alice_mines_101_pays_bob_and_both_wallets_follow_confirmations(network, tmp_path):
    node = network.add("n")
    cli = Cli(str(tmp_path / "home"), f"http://127.0.0.1:{node.api_port}")
    alice, bob = str(tmp_path / "alice.json"), str(tmp_path / "bob.json")
    alice_addr = cli.json("wallet", "new", "--wallet", alice, "--network", "regtest")["address"]
    bob_addr = cli.json("wallet", "new", "--wallet", bob, "--network", "regtest")["address"]
    for path in (alice, bob):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    # 101 blocks to alice's wallet (a new address of it), through the control endpoint.
    mined = cli.json("mine", "101", "--wallet", alice, "--datadir", node.datadir)
    assert mined["height"] == 101 and len(mined["blocks"]) == 101 and mined["complete"]
    assert KeyFile.load(alice).address("receive", 1) == mined["address"]
    bal = cli.json("wallet", "balance", "--wallet", alice)
    assert bal["confirmed"] == 2 * P.initial_subsidy  # blocks 1 and 2 have 100+ confirmations
    assert bal["immature"] == 99 * P.initial_subsidy

    sent = cli("wallet", "send", "--wallet", alice, bob_addr, "12.345", "--fee-rate", "3")
    txid = sent.stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", txid), sent.stdout
    fee = json.loads(cli("chain", "tx", txid, "--json").stdout)["fee"]
    assert fee >= 3 * json.loads(cli("chain", "tx", txid, "--json").stdout)["size"]

    assert cli.json("wallet", "balance", "--wallet", bob)["unconfirmed"] == 1_234_500_000
    assert cli.json("wallet", "history", "--wallet", bob) == [
        {"txid": txid, "height": None, "confirmations": 0, "delta": 1_234_500_000, "amount": "+12.34500000"}]
    assert cli.json("wallet", "history", "--wallet", alice)[0]["delta"] == -(1_234_500_000 + fee)

    cli("mine", "1", "--address", OUTSIDER, "--datadir", node.datadir)
    bob_bal = cli.json("wallet", "balance", "--wallet", bob)
    assert bob_bal["confirmed"] == 1_234_500_000 and bob_bal["unconfirmed"] == 0
    assert cli.json("wallet", "history", "--wallet", bob)[0]["confirmations"] == 1
    alice_hist = cli.json("wallet", "history", "--wallet", alice, "--limit", "500")
    assert alice_hist[0] == {"txid": txid, "height": 102, "confirmations": 1, "delta": -(1_234_500_000 + fee),
                             "amount": f"-{(1_234_500_000 + fee) // COIN}.{(1_234_500_000 + fee) % COIN:08d}"}
    assert len(alice_hist) == 102  # 101 coinbases and the payment
    assert [h["delta"] for h in alice_hist[1:]] == [P.initial_subsidy] * 101
    assert [h["confirmations"] for h in alice_hist[1:]] == list(range(2, 103))

    cli("mine", "2", "--address", alice_addr, "--datadir", node.datadir)
    assert cli.json("wallet", "history", "--wallet", bob)[0]["confirmations"] == 3
    assert cli.json("wallet", "balance", "--wallet", bob, "--min-conf", "4")["confirmed"] == 0
    assert cli.json("wallet", "balance", "--wallet", bob, "--min-conf", "3")["confirmed"] == 1_234_500_000

    # A second node catches up; 'chain wait-sync' follows it to the first one's tip.
    late = network.add("late", "--connect", node.address)
    synced = cli("chain", "wait-sync", "--node", f"127.0.0.1:{late.api_port}", "--timeout", "60")
    assert "synced at height 104" in synced.stdout
    assert cli.json("chain", "status", "--node", f"127.0.0.1:{late.api_port}")["height"] == 104

    # The human tables, once each, for the transcript check below.
    for sub in ("balance", "history", "utxos"):
        cli("wallet", sub, "--wallet", alice)
    cli("wallet", "address", "--wallet", alice, "--list")
    cli("chain", "status")

    # Nothing secret ever left the wallet: not in any output, not in the node's log.
    secrets = []
    for path in (alice, bob):
        kf = KeyFile.load(path)
        secrets.append(kf._seed.hex())
        secrets += [kf.key(c, i).to_bytes().hex() for c, i, _ in kf.issued()]
    seen = "\n".join(cli.transcript) + node.log_text()
    assert not [s for s in secrets if s in seen]


def test_every_user_mistake_has_its_message_and_exit_code(network, tmp_path):
    node = network.add("n")
    testnet_node = network.add("t", network="testnet")
    url = f"http://127.0.0.1:{node.api_port}"
    cli = Cli(str(tmp_path / "home"), url)
    alice = str(tmp_path / "alice.json")
    addr = cli.json("wallet", "new", "--wallet", alice, "--network", "regtest")["address"]

    # An existing wallet is not overwritten.
    err = cli("wallet", "new", "--wallet", alice, "--network", "regtest", code=1).stderr
    assert "already exists" in err
    # A bad address checksum.
    bad = addr[:-1] + ("2" if addr[-1] != "2" else "3")
    assert "bad checksum" in cli("wallet", "send", "--wallet", alice, bad, "1", code=2).stderr
    # Bad amounts.
    assert "9 decimals" in cli("wallet", "send", "--wallet", alice, addr, "0.000000001", code=2).stderr
    assert "negative" in cli("wallet", "send", "--wallet", alice, addr, "-3", code=2).stderr
    # Insufficient funds, with the shortfall.
    err = cli("wallet", "send", "--wallet", alice, addr, "5", code=1).stderr
    assert "insufficient funds" in err and "short by 5.00000" in err
    # The node is unreachable: the URL tried.
    err = cli("wallet", "balance", "--wallet", alice, "--node", "127.0.0.1:9", code=3).stderr
    assert "cannot reach the node at http://127.0.0.1:9" in err
    err = cli("chain", "status", "--node", "127.0.0.1:9", code=3).stderr
    assert "cannot reach the node at http://127.0.0.1:9" in err
    # Wrong network: a regtest wallet against a testnet node, and a testnet-only check.
    err = cli("wallet", "balance", "--wallet", alice, "--node", f"127.0.0.1:{testnet_node.api_port}", code=1).stderr
    assert "wrong network" in err and "'testnet'" in err and "'regtest'" in err
    err = cli("mine", "1", "--address", addr, "--network", "testnet", code=1).stderr
    assert "wrong network" in err
    # The key file readable by others; and damaged.
    os.chmod(alice, 0o640)
    err = cli("wallet", "balance", "--wallet", alice, code=1).stderr
    assert "mode 0640" in err and "chmod 600" in err
    os.chmod(alice, 0o600)
    with open(alice, "a") as f:
        f.write("garbage")
    assert "damaged" in cli("wallet", "balance", "--wallet", alice, code=1).stderr
    # Mining without the node's token.
    err = cli("mine", "1", "--address", addr, "--datadir", str(tmp_path / "not-the-node"), code=1).stderr
    assert "control token" in err
