"""Genesis blocks: deterministic, meeting their own proof of work, with the nonce in params.py."""

import pytest

from minichain import params
from minichain.core.genesis import GENESIS_PUBKEY_HASH, NoGenesisError, find_genesis_nonce, genesis_block
from minichain.core.pow import check_proof_of_work
from minichain.core.validation import block_subsidy, check_block


@pytest.mark.parametrize("net, nonce", [(params.regtest, 2), (params.testnet, 2355)])
def test_genesis_meets_its_proof_of_work_with_the_nonce_in_params(net, nonce):
    block = genesis_block(net)
    assert net.genesis_nonce == nonce
    assert block.header.nonce == nonce
    assert check_proof_of_work(block.header, net)
    # The nonce is the first that works, so anyone can re-derive it.
    assert find_genesis_nonce(net) == nonce
    assert block.header.time == net.genesis_time and block.header.bits == net.genesis_bits
    assert block.header.prev_hash == b"\x00" * 32


@pytest.mark.parametrize("net", [params.regtest, params.testnet])
def test_genesis_is_deterministic_and_passes_the_block_checks(net):
    a, b = genesis_block(net), genesis_block(net)
    assert a.serialize() == b.serialize()
    check_block(a, net)
    (coinbase,) = a.transactions
    assert coinbase.coinbase_height() == 0
    assert net.genesis_message in coinbase.inputs[0].signature
    assert [(o.value, o.pubkey_hash) for o in coinbase.outputs] == [(block_subsidy(0, net), GENESIS_PUBKEY_HASH)]


@pytest.mark.parametrize("net", [params.regtest, params.testnet])
def test_genesis_is_dated_in_the_past_so_the_next_block_can_be_mined_now(net):
    import time

    # Block 1 needs a time above the genesis time and at most max_future_block_time
    # ahead of the clock: a genesis in the future would make the network unminable.
    assert net.genesis_time + 1 <= int(time.time()) + net.max_future_block_time


def test_networks_have_different_genesis_blocks():
    assert genesis_block(params.regtest).hash != genesis_block(params.testnet).hash


def test_main_has_no_minichain_genesis():
    with pytest.raises(NoGenesisError, match="main"):
        genesis_block(params.main)
