import pytest
from hypothesis import given, strategies as st

from minichain.core.encoding import DecodeError, Reader, Writer, decode_all


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_compact_size_round_trip_and_minimal_length(n):
    data = Writer().compact_size(n).getvalue()
    expected_len = 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9
    assert len(data) == expected_len
    assert decode_all(data, lambda r: r.compact_size(limit=2**64)) == n


@pytest.mark.parametrize(
    "data",
    [
        bytes([0xFD]) + (0xFC).to_bytes(2, "little"),
        bytes([0xFE]) + (0xFFFF).to_bytes(4, "little"),
        bytes([0xFF]) + (0xFFFFFFFF).to_bytes(8, "little"),
    ],
)
def test_non_canonical_compact_size_is_rejected(data):
    with pytest.raises(DecodeError, match="non-canonical"):
        decode_all(data, Reader.compact_size)


def test_compact_size_above_limit_is_rejected():
    data = Writer().compact_size(1001).getvalue()
    with pytest.raises(DecodeError, match="exceeds limit"):
        decode_all(data, lambda r: r.compact_size(limit=1000))


def test_count_larger_than_remaining_bytes_is_rejected():
    data = Writer().compact_size(50).write(b"x" * 49).getvalue()
    with pytest.raises(DecodeError, match="exceeds"):
        Reader(data).count(limit=10_000)


@given(st.binary(max_size=40), st.integers(min_value=0, max_value=2**32 - 1), st.integers(-(2**63), 2**63 - 1))
def test_writer_reader_round_trip(blob, u, i):
    data = Writer().var_bytes(blob).u32(u).i64(i).u8(7).getvalue()

    def read(r):
        return r.var_bytes(100), r.u32(), r.i64(), r.u8()

    assert decode_all(data, read) == (blob, u, i, 7)


@given(st.binary(max_size=40))
def test_truncated_and_trailing_input_raise_decode_error(blob):
    data = Writer().var_bytes(blob).u32(5).getvalue()
    read = lambda r: (r.var_bytes(100), r.u32())  # noqa: E731
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode_all(data[:cut], read)
    with pytest.raises(DecodeError, match="trailing"):
        decode_all(data + b"\x00", read)


def test_reader_refuses_non_bytes():
    with pytest.raises(DecodeError):
        Reader("not bytes")  # type: ignore[arg-type]
