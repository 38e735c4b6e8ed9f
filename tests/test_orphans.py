"""The bounded orphan pool (core/orphans.py) that the chain state and the simulator share."""

from hypothesis import given, strategies as st

from minichain.core.orphans import OrphanPool


class B:
    """A stand-in block: the pool only reads ``hash`` and ``header.prev_hash``."""

    def __init__(self, h: int, prev: int):
        self.hash = bytes([h]) * 32
        self.header = self
        self.prev_hash = bytes([prev]) * 32


def test_children_come_back_in_arrival_order_and_leave_the_pool():
    pool = OrphanPool(10)
    first, second, other = B(2, 1), B(3, 1), B(4, 9)
    for b in (first, other, second):
        assert pool.add(b)
    assert not pool.add(first), "a block already pooled is not pooled twice"
    assert pool.waiting_for(first.prev_hash)
    assert pool.pop_children(first.prev_hash) == [first, second]
    assert first.hash not in pool and other.hash in pool and len(pool) == 1
    assert pool.pop_children(first.prev_hash) == []


@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 8)), max_size=200), st.integers(1, 12))
def test_the_pool_never_exceeds_its_limit_and_keeps_the_newest(adds, limit):
    pool = OrphanPool(limit)
    order = []
    for h, prev in adds:
        if pool.add(B(h, prev)):
            order.append(bytes([h]) * 32)
        assert len(pool) <= limit
    kept = [b.hash for b in pool]
    # What is left is exactly the last ``limit`` successful additions, oldest first.
    assert len(kept) == min(limit, len(order))
    assert kept == order[len(order) - len(kept):]
    for b in list(pool):
        assert pool.waiting_for(b.header.prev_hash)
