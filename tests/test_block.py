import hashlib

import pytest
from hypothesis import given, strategies as st

from minichain import params
from minichain.core.encoding import DecodeError
from minichain.core.hashing import merkle_root
from minichain.core.pow import check_proof_of_work

from tests.bitcoin_data import BLOCK_170_TXIDS, HEADERS


def header_from_row(row):
    from minichain.core.block import BlockHeader

    _, _, version, prev, merkle, time, bits, nonce = row
    return BlockHeader(version, bytes.fromhex(prev)[::-1], bytes.fromhex(merkle)[::-1], time, bits, nonce)


@pytest.mark.parametrize("row", HEADERS, ids=[f"height{r[0]}" for r in HEADERS])
def test_real_bitcoin_headers_hash_and_pass_proof_of_work(row):
    from minichain.core.block import BlockHeader

    header = header_from_row(row)
    raw = header.serialize()
    assert len(raw) == 80
    assert header.hash_hex() == row[1]
    assert hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex() == row[1]
    assert BlockHeader.deserialize(raw) == header
    assert check_proof_of_work(header, params.main)


def test_real_header_with_another_nonce_fails_proof_of_work():
    header = header_from_row(HEADERS[0])
    assert not check_proof_of_work(header.with_nonce(header.nonce + 1), params.main)


def test_header_with_bits_easier_than_pow_limit_fails():
    # The genesis hash meets 0x1e00ffff too, but that target is above main's pow limit.
    header = header_from_row(HEADERS[0])
    from dataclasses import replace

    assert not check_proof_of_work(replace(header, bits=0x1E00FFFF), params.main)


def test_headers_chain_by_prev_hash():
    by_height = {row[0]: header_from_row(row) for row in HEADERS}
    assert by_height[1].prev_hash == by_height[0].hash
    assert by_height[2].prev_hash == by_height[1].hash


def test_block_170_txids_give_its_merkle_root():
    header = header_from_row(HEADERS[3])
    root, mutated = merkle_root([bytes.fromhex(t)[::-1] for t in BLOCK_170_TXIDS])
    assert root == header.merkle_root and not mutated


headers = st.builds(
    lambda *a: header_from_row((0, "", *a)),
    st.integers(-(2**31), 2**31 - 1),
    st.binary(min_size=32, max_size=32).map(lambda b: b.hex()),
    st.binary(min_size=32, max_size=32).map(lambda b: b.hex()),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@given(headers)
def test_header_round_trip(header):
    from minichain.core.block import BlockHeader

    assert BlockHeader.deserialize(header.serialize()) == header


@given(st.binary(max_size=200))
def test_header_decoder_raises_only_decode_error(data):
    from minichain.core.block import BlockHeader

    if len(data) == 80:
        assert BlockHeader.deserialize(data).serialize() == data
    else:
        with pytest.raises(DecodeError):
            BlockHeader.deserialize(data)


# -- Merkle trees -----------------------------------------------------------------------


def reference_root(hashes):
    """Recursive definition: split at the largest power of two below n (a different
    algorithm from the level-by-level one in hashing.merkle_root), with Bitcoin's rule
    that a lone node at the end of a level is paired with itself."""
    def sha256d(b):
        return hashlib.sha256(hashlib.sha256(b).digest()).digest()

    def level_up(level):
        if len(level) == 1:
            return level[0]
        if len(level) % 2:
            level = level + [level[-1]]
        return level_up([sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)])

    return level_up(list(hashes))


def leaves(n):
    return [hashlib.sha256(bytes([i, n])).digest() for i in range(n)]


@pytest.mark.parametrize("n", range(1, 34))
def test_merkle_root_of_1_to_33_leaves(n):
    hashes = leaves(n)
    root, mutated = merkle_root(hashes)
    assert root == reference_root(hashes)
    assert not mutated
    if n == 1:
        assert root == hashes[0]


def test_merkle_root_of_two_leaves_is_their_hash():
    a, b = leaves(2)
    assert merkle_root([a, b])[0] == hashlib.sha256(hashlib.sha256(a + b).digest()).digest()


@pytest.mark.parametrize("n", [3, 5, 7, 9, 11, 13, 17, 25, 33])  # odd: the last leaf is padded
def test_duplicated_tail_gives_same_root_but_is_flagged_mutated(n):
    """CVE-2012-2459: [.., x] and [.., x, x] (or a duplicated odd subtree) hash alike."""
    hashes = leaves(n)
    root, mutated = merkle_root(hashes)
    # Duplicate the trailing leaf: the padded level becomes real, the root is the same.
    mutated_list = hashes + [hashes[-1]]
    root2, mutated2 = merkle_root(mutated_list)
    assert root2 == root
    assert mutated2 and not mutated


def test_duplicated_pair_at_a_higher_level_is_flagged():
    a, b, c, d, e, f = leaves(6)
    # Level 1 of [a..f] is [ab, cd, ef] padded to [ab, cd, ef, ef]; the list
    # [a..f, e, f] produces that level for real, with the same root.
    root, mutated = merkle_root([a, b, c, d, e, f])
    root2, mutated2 = merkle_root([a, b, c, d, e, f, e, f])
    assert root == root2 and not mutated and mutated2


def test_empty_merkle_root_is_zero():
    assert merkle_root([]) == (b"\x00" * 32, False)


# -- Blocks -----------------------------------------------------------------------------

from tests.test_tx import transactions  # noqa: E402

blocks = st.builds(
    lambda h, txs: __import__("minichain.core.block", fromlist=["Block"]).Block(h, tuple(txs)),
    headers,
    st.lists(transactions, max_size=4),
)


@given(blocks)
def test_block_round_trip_and_merkle_root_over_txids(block):
    from minichain.core.block import Block

    data = block.serialize()
    assert Block.deserialize(data) == block
    assert block.size == len(data)
    assert block.compute_merkle_root() == merkle_root([tx.txid for tx in block.transactions])


@given(blocks, st.data())
def test_block_truncations_and_trailing_bytes_raise_decode_error(block, data):
    from minichain.core.block import Block

    raw = block.serialize()
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        Block.deserialize(raw[:cut])
    with pytest.raises(DecodeError):
        Block.deserialize(raw + b"\x00")


@given(st.binary(min_size=80, max_size=300))
def test_block_decoder_raises_only_decode_error(data):
    from minichain.core.block import Block

    try:
        block = Block.deserialize(data)
    except DecodeError:
        return
    assert block.serialize() == data


def test_oversized_block_is_refused_before_decoding():
    from minichain.core.block import MAX_BLOCK_DECODE_SIZE, Block

    with pytest.raises(DecodeError, match="exceeds"):
        Block.deserialize(b"\x00" * (MAX_BLOCK_DECODE_SIZE + 1))
