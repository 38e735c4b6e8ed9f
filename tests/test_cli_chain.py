"""``minichain chain``, ``minichain mine`` and ``minichain bench`` through click's runner,
against a real node API in this process."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from minichain import params
from minichain.cli import main
from minichain.core.keys import PrivateKey, encode_address
from minichain.wallet.keyfile import KeyFile
from tests.test_cli_support import InProcessNode

P = params.regtest
ADDR = PrivateKey(99).public_key.address(P.address_version)


@pytest.fixture
def node(tmp_path):
    n = InProcessNode(str(tmp_path / "node"))
    yield n
    n.close()


@pytest.fixture
def cli(tmp_path, node, monkeypatch):
    monkeypatch.setenv("MINICHAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MINICHAIN_NODE", node.url)
    for var in ("MINICHAIN_NETWORK", "MINICHAIN_WALLET", "MINICHAIN_DATADIR"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def run(*args, code: int = 0):
        result = runner.invoke(main, [str(a) for a in args])
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{args} raised {result.exception!r}\n{result.output}") from result.exception
        assert result.exit_code == code, f"exit {result.exit_code} != {code} for {args}:\n{result.output}"
        assert "Traceback" not in result.output
        return result

    run.tmp = tmp_path
    return run


def test_status_block_blocks_tips_json_and_tables(cli, node):
    hashes = node.mine(3, ADDR)
    status = json.loads(cli("chain", "status", "--json").stdout)
    assert status["height"] == 3 and status["tip"] == hashes[-1] and status["network"] == "regtest"
    table = cli("chain", "status").stdout
    assert hashes[-1] in table and "regtest" in table and "synced" in table

    by_height = json.loads(cli("chain", "block", "2", "--json").stdout)
    by_hash = json.loads(cli("chain", "block", hashes[1], "--json").stdout)
    assert by_height == by_hash and by_height["hash"] == hashes[1] and by_height["confirmations"] == 2
    out = cli("chain", "block", "3").stdout
    assert hashes[2] in out and ADDR in out and "coinbase" in out and "50.00000000" in out

    blocks = json.loads(cli("chain", "blocks", "--count", "2", "--json").stdout)
    assert [b["hash"] for b in blocks] == hashes[::-1][:2]
    assert hashes[0] in cli("chain", "blocks").stdout

    tips = json.loads(cli("chain", "tips", "--json").stdout)
    assert tips[0]["hash"] == hashes[-1] and tips[0]["status"] == "active"
    assert "active" in cli("chain", "tips").stdout


def test_tx_and_mempool(cli, node, tmp_path):
    wallet = str(tmp_path / "w.json")
    addr = json.loads(cli("wallet", "new", "--wallet", wallet, "--network", "regtest", "--json").stdout)["address"]
    node.mine(P.coinbase_maturity, addr)
    txid = cli("wallet", "send", "--wallet", wallet, ADDR, "2.5").stdout.strip()
    pool = json.loads(cli("chain", "mempool", "--json").stdout)
    assert [t["txid"] for t in pool["transactions"]] == [txid]
    assert txid in cli("chain", "mempool").stdout
    tx = json.loads(cli("chain", "tx", txid, "--json").stdout)
    assert tx["in_mempool"] and tx["confirmations"] == 0
    out = cli("chain", "tx", txid).stdout
    assert "in the mempool" in out and ADDR in out and "2.50000000" in out and addr in out
    node.mine(1, ADDR)
    out = cli("chain", "tx", txid).stdout
    assert f"block {P.coinbase_maturity + 1}" in out
    assert "the mempool is empty" in cli("chain", "mempool").stdout


def test_peers(cli):
    assert json.loads(cli("chain", "peers", "--json").stdout)["peers"] == []
    assert "no peers" in cli("chain", "peers").stdout


def test_chain_errors(cli, node):
    err = cli("chain", "block", "99", code=1).stderr
    assert "no block at height 99" in err
    err = cli("chain", "tx", "zz", code=1).stderr
    assert "64 hex digits" in err
    err = cli("chain", "tx", "00" * 32, code=1).stderr
    assert "unknown transaction" in err
    err = cli("chain", "status", "--node", "127.0.0.1:9", code=3).stderr
    assert "cannot reach the node at http://127.0.0.1:9" in err
    err = cli("chain", "status", "--network", "testnet", code=1).stderr
    assert "wrong network" in err and "'regtest'" in err
    cli("chain", "status", "--network", "regtest")


def test_wait_sync_gives_up_on_a_node_without_peers(cli, node):
    node.mine(2, ADDR)
    err = cli("chain", "wait-sync", "--timeout", "0.5", code=1).stderr
    assert "not synced after 0.5s" in err and "no peers" in err


def test_mine_asks_in_batches_and_reports_the_height(cli, node):
    calls = node.python_generate()
    out = cli("mine", "30", "--address", ADDR, "--datadir", node.datadir, "--json").stdout
    data = json.loads(out)
    assert data["height"] == 30 and len(data["blocks"]) == 30 and data["complete"]
    assert node.height == 30
    assert sum(calls) == 30 and calls[0] == 1 and len(calls) >= 2  # small first batch, then bigger
    assert all(c <= 50 for c in calls)
    human = cli("mine", "2", "--address", ADDR, "--datadir", node.datadir)
    assert "mined 2 block(s)" in human.stdout and "height 32" in human.stdout


def test_mine_to_the_wallet_when_no_address_is_given(cli, node, tmp_path):
    node.python_generate()
    wallet = str(tmp_path / "w.json")
    cli("wallet", "new", "--wallet", wallet, "--network", "regtest")
    r = cli("mine", "3", "--wallet", wallet, "--datadir", node.datadir)
    kf = KeyFile.load(wallet)
    assert kf.counts["receive"] == 2 and kf.address("receive", 1) in r.stderr
    bal = json.loads(cli("wallet", "balance", "--wallet", wallet, "--json").stdout)
    assert bal["immature"] == 3 * P.initial_subsidy


def test_mine_errors(cli, node, tmp_path):
    node.python_generate()
    # No token: the datadir is not the node's.
    err = cli("mine", "1", "--address", ADDR, "--datadir", str(tmp_path / "elsewhere"), code=1).stderr
    assert "control token" in err and ".cookie" in err and "--datadir" in err
    # A wrong token.
    other = tmp_path / "forged"
    other.mkdir()
    (other / ".cookie").write_text("0" * 64)
    err = cli("mine", "1", "--address", ADDR, "--datadir", str(other), code=1).stderr
    assert "needs the node's token" in err
    # Bad address, another network's address, wrong network, no node.
    err = cli("mine", "1", "--address", ADDR[:-1] + "x", "--datadir", node.datadir, code=2).stderr
    assert "not a valid regtest address" in err
    mainnet = encode_address(bytes(20), params.main.address_version)
    err = cli("mine", "1", "--address", mainnet, "--datadir", node.datadir, code=2).stderr
    assert "another network" in err
    err = cli("mine", "1", "--address", ADDR, "--network", "testnet", code=1).stderr
    assert "wrong network" in err
    err = cli("mine", "1", "--address", ADDR, "--node", "127.0.0.1:9", code=3).stderr
    assert "cannot reach the node at http://127.0.0.1:9" in err
    err = cli("mine", "1", "--datadir", node.datadir, code=1).stderr  # no --address and no wallet
    assert "no wallet at" in err and "--address" in err
    err = cli("mine", "0", "--address", ADDR, code=2).stderr
    assert "0" in err
    assert node.height == 0


def test_bench_crypto_runs_the_benchmark(cli, monkeypatch):
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = cli("bench", "crypto", "--budget", "0.01").stdout
    assert "sign" in out and "verify" in out and "ops/s" in out
    assert "ecdsa" in out and "coincurve" in out  # both, installed or not
    assert "verify backend in use" in out and "2 threads at once" in out


def test_bench_explains_when_the_benchmarks_are_not_there(cli, monkeypatch, tmp_path):
    import sys

    from minichain.cli import bench as bench_mod

    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd(), bench_mod._checkout_roots()[1])])
    monkeypatch.setattr(bench_mod, "_checkout_roots", lambda: [str(tmp_path)])
    monkeypatch.chdir(tmp_path)
    err = cli("bench", "crypto", code=1).stderr
    assert "not part of the installed package" in err and "python -m benchmarks.crypto" in err


def test_bench_mine_runs_the_kernel_benchmark(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # found through the checkout the package was imported from
    out = cli("bench", "mine", "--seconds", "0.02", "--repeat", "1").stdout
    assert "MH/s" in out and "hashlib" in out


def test_bench_of_a_benchmark_that_does_not_exist_yet():
    from minichain.cli.bench import load_benchmark
    from minichain.cli.common import CommandError

    with pytest.raises(CommandError, match="no benchmarks.nosuch benchmark"):
        load_benchmark("nosuch")


def test_node_refuses_a_bad_assumevalid_or_verify_choice_in_one_sentence(monkeypatch):
    from click.testing import CliRunner

    from minichain.cli import main
    from minichain.core import keys

    out = CliRunner().invoke(main, ["node", "--network", "regtest", "--assumevalid", "12ab"])
    assert out.exit_code == 2 and "a block hash is 64 hex digits, not 4" in out.output and "Traceback" not in out.output
    monkeypatch.setattr(keys, "VERIFY_ENV_ERROR", "MINICHAIN_VERIFY='x' is not one of auto, ecdsa, coincurve")
    out = CliRunner().invoke(main, ["node", "--network", "regtest"])
    assert out.exit_code == 2 and "MINICHAIN_VERIFY='x' is not one of" in out.output
