import pytest
from hypothesis import given, settings, strategies as st

from minichain.core.block import Block, BlockHeader
from minichain.core.encoding import DecodeError
from minichain.core.tx import TxOut, make_coinbase
from minichain.node import messages as m
from tests.test_block import blocks, headers
from tests.test_tx import transactions

hashes = st.binary(min_size=32, max_size=32)
inv_items = st.lists(st.tuples(st.sampled_from([m.INV_TX, m.INV_BLOCK]), hashes), max_size=20)
text = st.text(max_size=40)

messages = st.one_of(
    st.builds(m.Version, st.integers(0, 2**32 - 1), hashes, st.integers(0, 2**32 - 1), text,
              st.integers(0, 65535), st.integers(0, 2**64 - 1)),
    st.just(m.Verack()),
    st.builds(m.Ping, st.integers(0, 2**64 - 1)),
    st.builds(m.Pong, st.integers(0, 2**64 - 1)),
    st.builds(m.Inv, inv_items),
    st.builds(m.GetData, inv_items),
    st.builds(m.NotFound, inv_items),
    st.builds(m.GetHeaders, st.lists(hashes, max_size=12), hashes),
    st.builds(m.Headers, st.lists(headers, max_size=5)),
    st.builds(m.BlockMessage, blocks),
    st.builds(m.TxMessage, transactions),
    st.just(m.GetAddr()),
    st.builds(m.Addr, st.lists(st.tuples(st.text(min_size=1, max_size=30), st.integers(0, 65535)), max_size=5)),
    st.builds(m.Reject, text),
)


@given(messages)
def test_every_message_round_trips_through_one_frame(msg):
    frame = m.encode(msg)
    assert frame[0] == msg.TYPE
    assert m.decode(frame) == msg


@given(messages, st.data())
def test_truncated_or_padded_frames_raise_decode_error(msg, data):
    frame = m.encode(msg)
    cut = data.draw(st.integers(1, len(frame)))
    if cut < len(frame):
        with pytest.raises(DecodeError):
            m.decode(frame[:cut])
    with pytest.raises(DecodeError):
        m.decode(frame + b"\x00")


@given(st.binary(max_size=300))
def test_random_frames_decode_canonically_or_raise_decode_error(frame):
    try:
        msg = m.decode(frame)
    except DecodeError:
        return
    assert m.encode(msg) == frame


def test_registry_is_explicit_and_ids_are_unique():
    assert len(m.REGISTRY) == 14
    assert {cls.NAME for cls in m.REGISTRY.values()} >= {"version", "inv", "getdata", "headers", "block", "tx"}
    with pytest.raises(ValueError, match="twice"):
        m.register(type("Dup", (m.Message,), {"__slots__": (), "TYPE": 1, "NAME": "dup"}))


def test_unknown_type_empty_and_oversize_frames_are_refused():
    with pytest.raises(DecodeError, match="unknown message type"):
        m.decode(bytes([200]))
    with pytest.raises(DecodeError, match="empty"):
        m.decode(b"")
    with pytest.raises(DecodeError, match="exceeds the limit"):
        m.decode(bytes([m.Ping.TYPE]) + b"\x00" * m.MAX_FRAME_SIZE)


def test_counts_above_the_limits_are_refused_before_reading_items():
    from minichain.core.encoding import Writer

    frame = Writer().u8(m.Headers.TYPE).compact_size(m.MAX_HEADERS + 1).getvalue() + b"\x00" * 100
    with pytest.raises(DecodeError, match="exceeds limit"):
        m.decode(frame)
    frame = Writer().u8(m.Inv.TYPE).compact_size(1).u8(9).write(b"\x00" * 32).getvalue()
    with pytest.raises(DecodeError, match="unknown inventory kind"):
        m.decode(frame)


def test_invalid_utf8_text_is_a_decode_error():
    from minichain.core.encoding import Writer

    frame = Writer().u8(m.Reject.TYPE).var_bytes(b"\xff\xfe").getvalue()
    with pytest.raises(DecodeError, match="UTF-8"):
        m.decode(frame)


# -- sizes without encoding (the simulator charges messages by size) ---------------------------


@given(st.lists(st.tuples(st.sampled_from([m.INV_TX, m.INV_BLOCK]), st.binary(min_size=32, max_size=32)),
                max_size=m.MAX_INV_ITEMS),
       st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=m.MAX_LOCATOR),
       st.text(max_size=60), st.integers(0, 300))
@settings(max_examples=60, deadline=None)
def test_every_message_knows_its_encoded_size(items, locator, text, n_headers):
    header = BlockHeader(1, b"\x01" * 32, b"\x02" * 32, 5, 0x207FFFFF, 7)
    cb = make_coinbase(1, [TxOut(50, b"\x03" * 20)])
    msgs = [
        m.Version(1, b"\x00" * 32, 5, text[:40], 8333, 9), m.Verack(), m.Ping(3), m.Pong(4),
        m.Inv(items), m.GetData(items), m.NotFound(items), m.GetHeaders(locator, b"\x09" * 32),
        m.Headers([header] * n_headers), m.BlockMessage(Block(header, (cb,))), m.TxMessage(cb),
        m.GetAddr(), m.Addr([(text[:30] or "h", 1), ("127.0.0.1", 65535)]), m.Reject(text[:50]),
    ]
    for msg in msgs:
        assert msg.size == len(m.encode(msg)), msg.NAME
