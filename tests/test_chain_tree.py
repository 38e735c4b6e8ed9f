"""The pure block tree (core/chain.py): fork choice, statuses, forks, paths and tips."""

import random

import pytest
from hypothesis import given, settings, strategies as st

from minichain import params
from minichain.core.block import BlockHeader
from minichain.core.chain import BlockTree, Status, UnknownParent
from minichain.core.pow import block_work

EASY = 0x207FFFFF     # regtest pow limit: work 2 per block
HARD = 0x2000FFFF     # about 128x the work of EASY

GENESIS = BlockHeader(1, b"\x00" * 32, b"\x11" * 32, 1_000_000, EASY, 0)


def child(parent: BlockHeader, tag: int = 0, bits: int = EASY, time: int | None = None) -> BlockHeader:
    """A header on top of ``parent``; ``tag`` makes siblings distinct."""
    return BlockHeader(1, parent.hash, tag.to_bytes(32, "little"), parent.time + 600 if time is None else time, bits, 0)


def extend(tree: BlockTree, parent: BlockHeader, n: int, tag: int = 0, bits: int = EASY, data: bool = True):
    out = []
    for _ in range(n):
        h = child(parent, tag, bits)
        e = tree.add_header(h)
        if data:
            tree.set_have_data(e)
        out.append(e)
        parent = h
    return out


def new_tree(p=params.regtest):
    return BlockTree(GENESIS, p)


def test_most_work_wins_not_most_blocks():
    tree = new_tree()
    long_branch = extend(tree, GENESIS, 5, tag=1)
    heavy_branch = extend(tree, GENESIS, 2, tag=2, bits=HARD)
    assert heavy_branch[-1].chainwork > long_branch[-1].chainwork
    assert tree.best_candidate() is heavy_branch[-1]


def test_equal_work_keeps_the_first_seen():
    tree = new_tree()
    a = extend(tree, GENESIS, 3, tag=1)
    b = extend(tree, GENESIS, 3, tag=2)
    assert a[-1].chainwork == b[-1].chainwork
    assert tree.best_candidate() is a[-1]
    # One more block on b breaks the tie.
    b += extend(tree, b[-1].header, 1, tag=2)
    assert tree.best_candidate() is b[-1]


def test_headers_without_data_are_not_candidates_until_complete():
    tree = new_tree()
    entries = extend(tree, GENESIS, 3, tag=1, data=False)
    assert tree.best_candidate() is tree.genesis
    assert tree.best_header is entries[-1]
    # Data arriving out of order: the tip's data first, then its ancestors'.
    tree.set_have_data(entries[2])
    tree.set_have_data(entries[0])
    assert tree.best_candidate() is entries[0]
    tree.set_have_data(entries[1])
    assert all(e.complete for e in entries)
    assert tree.best_candidate() is entries[2]


def test_unknown_parent_is_refused():
    tree = new_tree()
    orphan = child(child(GENESIS, 9), 9)
    with pytest.raises(UnknownParent):
        tree.add_header(orphan)


def test_add_header_twice_returns_the_same_entry():
    tree = new_tree()
    h = child(GENESIS)
    assert tree.add_header(h) is tree.add_header(h)
    assert len(tree) == 2


def test_invalid_block_and_descendants_leave_the_candidates():
    tree = new_tree()
    good = extend(tree, GENESIS, 2, tag=1)
    bad = extend(tree, GENESIS, 4, tag=2)
    assert tree.best_candidate() is bad[-1]
    marked = tree.mark_invalid(bad[1])
    assert marked[0] is bad[1] and bad[1].status is Status.INVALID
    assert {e.hash for e in marked[1:]} == {bad[2].hash, bad[3].hash}
    assert all(e.status is Status.INVALID_CHILD for e in bad[2:])
    # bad[0] is valid and has the same work as good[0] but arrived later.
    assert tree.best_candidate() is good[-1]
    # A header later added under an invalid block is born INVALID_CHILD.
    late = tree.add_header(child(bad[-1].header, 7))
    assert late.status is Status.INVALID_CHILD
    tree.set_have_data(late)
    assert tree.best_candidate() is good[-1]
    assert tree.best_header is good[-1]


def test_invalid_child_of_the_only_branch_makes_its_parent_the_candidate_again():
    tree = new_tree()
    chain = extend(tree, GENESIS, 3)
    tree.mark_invalid(chain[2])
    assert tree.best_candidate() is chain[1]


def test_connect_and_disconnect_follow_the_active_tip():
    tree = new_tree()
    a = extend(tree, GENESIS, 2, tag=1)
    with pytest.raises(ValueError):
        tree.connect_tip(a[1])  # not a child of the tip
    tree.connect_tip(a[0])
    tree.connect_tip(a[1])
    assert tree.tip is a[1] and tree.height == 2 and a[1].status is Status.VALID
    assert tree.in_active_chain(a[0])
    assert tree.disconnect_tip() is a[1]
    assert tree.tip is a[0] and not tree.in_active_chain(a[1])
    tree.disconnect_tip()
    with pytest.raises(ValueError):
        tree.disconnect_tip()


def random_tree(rng: random.Random, n: int) -> tuple[BlockTree, list]:
    tree = new_tree()
    headers = [GENESIS]
    for i in range(n):
        parent = rng.choice(headers[-8:]) if rng.random() < 0.8 else rng.choice(headers)
        h = child(parent, tag=i, bits=rng.choice([EASY, EASY, HARD]))
        tree.add_header(h)
        headers.append(h)
    return tree, headers


def ancestors(entry):
    out = []
    while entry is not None:
        out.append(entry)
        entry = entry.parent
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(2, 60))
def test_get_ancestor_fork_and_path_agree_with_naive_walks(seed, n):
    rng = random.Random(seed)
    tree, headers = random_tree(rng, n)
    entries = [tree.get(h.hash) for h in headers]
    for _ in range(10):
        a, b = rng.choice(entries), rng.choice(entries)
        chain_a = ancestors(a)
        h = rng.randint(0, a.height)
        assert a.get_ancestor(h) is chain_a[a.height - h]
        common = [e for e in chain_a if e in set(ancestors(b))]
        fork = tree.find_fork(a, b)
        assert fork is common[0]
        disconnect, connect = tree.path(a, b)
        assert disconnect == chain_a[: a.height - fork.height]
        assert connect == list(reversed(ancestors(b)[: b.height - fork.height]))
        assert a.chainwork == sum(block_work(e.header.bits) for e in chain_a)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 60))
def test_best_candidate_is_the_most_work_complete_block_regardless_of_data_order(seed, n):
    rng = random.Random(seed)
    tree, headers = random_tree(rng, n)
    entries = [tree.get(h.hash) for h in headers[1:]]
    with_data = rng.sample(entries, rng.randint(0, len(entries)))
    for e in with_data:
        tree.set_have_data(e)
    have = {e.hash for e in with_data} | {GENESIS.hash}
    complete = [e for e in [tree.genesis] + entries if all(x.hash in have for x in ancestors(e))]
    assert {e.hash for e in complete} == {e.hash for e in [tree.genesis] + entries if e.complete}
    best_work = max(e.chainwork for e in complete)
    best = tree.best_candidate()
    assert best.chainwork == best_work
    # Among equal work, the one whose data arrived first.
    tied = [e for e in complete if e.chainwork == best_work]
    assert best is min(tied, key=lambda e: e.sequence)


def test_median_time_past_is_the_median_of_the_last_eleven():
    tree = new_tree()
    times = [1_000_000 + t for t in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0, 10, 11, 100, 50)]
    parent = GENESIS
    entry = None
    for i, t in enumerate(times):
        h = child(parent, i, time=t)
        entry = tree.add_header(h)
        parent = h
    last11 = sorted(times[-11:])
    assert tree.median_time_past(entry) == last11[5]
    # Near genesis fewer than 11 blocks exist: the median of what there is.
    first = tree.get(child(GENESIS, 0, time=times[0]).hash)
    assert tree.median_time_past(first) == sorted([GENESIS.time, times[0]])[1]


def test_next_bits_retargets_only_at_window_boundaries():
    p = params.testnet
    genesis = BlockHeader(1, b"\x00" * 32, b"\x22" * 32, p.genesis_time, p.genesis_bits, 0)
    tree = BlockTree(genesis, p)
    parent = genesis
    entry = tree.genesis
    # Blocks twice as fast as the 5 s target: the retarget halves the target.
    for i in range(p.retarget_interval - 1):
        h = BlockHeader(1, parent.hash, i.to_bytes(32, "little"), parent.time + 2, parent.bits, 0)
        entry = tree.add_header(h)
        parent = h
        assert tree.next_bits(entry) == p.genesis_bits or entry.height == p.retarget_interval - 1
    assert entry.height == p.retarget_interval - 1
    from minichain.core.pow import bits_to_target, retarget

    expected = retarget(parent.bits, genesis.time, parent.time, p)
    assert tree.next_bits(entry) == expected
    assert bits_to_target(expected) < bits_to_target(p.genesis_bits)


def test_regtest_next_bits_never_changes():
    tree = new_tree()
    chain = extend(tree, GENESIS, 5)
    assert tree.next_bits(chain[-1]) == EASY


def test_chain_tips_report_every_kind_of_leaf():
    tree = new_tree()
    main = extend(tree, GENESIS, 3, tag=1)
    for e in main:
        tree.connect_tip(e)
    fork = extend(tree, main[0].header, 1, tag=2)          # complete, never connected
    headers_only = extend(tree, main[0].header, 2, tag=3, data=False)
    bad = extend(tree, main[1].header, 1, tag=4)
    tree.mark_invalid(bad[0])
    tips = {t["hash"]: t for t in tree.chain_tips()}
    assert tips[main[-1].hash]["status"] == "active" and tips[main[-1].hash]["branchlen"] == 0
    assert tips[fork[0].hash]["status"] == "valid-headers" and tips[fork[0].hash]["branchlen"] == 1
    assert tips[headers_only[-1].hash]["status"] == "headers-only" and tips[headers_only[-1].hash]["branchlen"] == 2
    assert tips[bad[0].hash]["status"] == "invalid"
    # A branch that was connected once and then left is a valid fork.
    tree.disconnect_tip()
    tree.disconnect_tip()
    tree.connect_tip(fork[0])
    tips = {t["hash"]: t for t in tree.chain_tips()}
    assert tips[main[-1].hash]["status"] == "valid-fork"
    assert tips[fork[0].hash]["status"] == "active"


def test_locator_starts_at_tip_and_ends_at_genesis():
    tree = new_tree()
    chain = extend(tree, GENESIS, 100)
    for e in chain:
        tree.connect_tip(e)
    loc = tree.locator()
    heights = [tree.get(h).height for h in loc]
    assert heights[0] == 100 and heights[-1] == 0
    assert heights[:11] == list(range(100, 89, -1))
    assert all(a > b for a, b in zip(heights, heights[1:]))
    assert len(loc) < 25


def test_load_rebuilds_the_same_tree():
    rng = random.Random(7)
    tree, headers = random_tree(rng, 40)
    entries = [tree.get(h.hash) for h in headers[1:]]
    for e in rng.sample(entries, 30):
        tree.set_have_data(e)
    victim = rng.choice([e for e in entries if e.height > 3])
    tree.mark_invalid(victim)
    best = tree.best_candidate()
    for e in tree.path(tree.tip, best)[1]:
        tree.connect_tip(e)
    rows = [(e.header, e.status, e.have_data, e.sequence) for e in tree.entries.values() if e is not tree.genesis]
    rng.shuffle(rows)
    loaded = new_tree()
    loaded.load(rows, tree.tip.hash)
    assert loaded.tip.hash == tree.tip.hash
    assert [e.hash for e in loaded.active] == [e.hash for e in tree.active]
    assert loaded.best_candidate().hash == tree.best_candidate().hash
    assert {h: e.status for h, e in loaded.entries.items()} == {h: e.status for h, e in tree.entries.items()}
    assert sorted((t["hash"], t["status"]) for t in loaded.chain_tips()) == sorted((t["hash"], t["status"]) for t in tree.chain_tips())


def test_connecting_prunes_candidates_with_less_work_but_keeps_the_choice_right():
    tree = new_tree()
    # Twenty short side branches, then a longer main chain that gets connected.
    for tag in range(20):
        extend(tree, GENESIS, 1, tag=100 + tag)
    main_chain = extend(tree, GENESIS, 3, tag=1)
    for e in tree.path(tree.tip, tree.best_candidate())[1]:
        tree.connect_tip(e)
    assert tree.tip is main_chain[-1]
    assert len(tree._candidates) <= 2
    # A heavier branch arriving later still wins; a failing one falls back correctly.
    rival = extend(tree, GENESIS, 5, tag=2)
    assert tree.best_candidate() is rival[-1]
    tree.mark_invalid(rival[3])
    assert tree.best_candidate() is main_chain[-1]


# -- activate_best_chain: the one ActivateBestChain loop (chain state and simulator) --------


from minichain.core.chain import activate_best_chain  # noqa: E402


class Recorder:
    """connect/disconnect callbacks that log what the loop asks for; ``bad`` blocks are invalid."""

    def __init__(self, tree, bad=()):
        self.tree = tree
        self.bad = set(bad)
        self.log = []

    def connect(self, entry):
        assert entry.parent is self.tree.tip, "connect must be asked for a child of the tip"
        if entry.hash in self.bad:
            self.log.append(("refuse", entry.height))
            return "bad-block"
        self.log.append(("connect", entry.height))
        return None

    def disconnect(self, entry):
        assert entry is self.tree.tip, "disconnect must be asked for the tip itself"
        self.log.append(("disconnect", entry.height))


def test_activation_follows_one_branch_then_reorganises_to_a_heavier_one():
    tree = new_tree()
    a = extend(tree, GENESIS, 3, tag=1)
    rec = Recorder(tree)
    done = activate_best_chain(tree, rec.connect, rec.disconnect)
    assert tree.tip is a[-1] and done.fork_height == 0 and done.connected == 3 and done.disconnected == 0
    b = extend(tree, a[0].header, 3, tag=2)          # forks after a[0]: 4 blocks beat 3
    rec.log.clear()
    done = activate_best_chain(tree, rec.connect, rec.disconnect)
    assert tree.tip is b[-1]
    assert rec.log == [("disconnect", 3), ("disconnect", 2), ("connect", 2), ("connect", 3), ("connect", 4)]
    assert (done.fork_height, done.disconnected, done.connected) == (1, 2, 3)
    assert not tree.in_active_chain(a[1]) and tree.in_active_chain(a[0])


def test_activation_marks_an_invalid_block_and_returns_to_the_best_valid_chain():
    tree = new_tree()
    a = extend(tree, GENESIS, 2, tag=1)
    rec = Recorder(tree)
    activate_best_chain(tree, rec.connect, rec.disconnect)
    b = extend(tree, GENESIS, 4, tag=2)              # heavier, but its second block is invalid
    rec.bad = {b[1].hash}
    rec.log.clear()
    done = activate_best_chain(tree, rec.connect, rec.disconnect)
    assert tree.tip is a[-1], "the old chain must be back"
    assert [e for e, _ in done.invalid] == [b[1]] and done.invalid[0][1] == "bad-block"
    assert b[1].status is Status.INVALID and b[3].status is Status.INVALID_CHILD
    assert b[0].status is Status.VALID               # connected once: valid for good
    assert rec.log == [("disconnect", 2), ("disconnect", 1), ("connect", 1), ("refuse", 2),
                       ("disconnect", 1), ("connect", 1), ("connect", 2)]
    assert done.fork_height == 0


def test_activation_with_nothing_better_does_nothing():
    tree = new_tree()
    rec = Recorder(tree)
    done = activate_best_chain(tree, rec.connect, rec.disconnect)
    assert not done.changed and rec.log == [] and tree.tip is tree.genesis


def test_activation_uses_the_callers_mark_invalid():
    tree = new_tree()
    b = extend(tree, GENESIS, 2, tag=2)
    marked = []
    rec = Recorder(tree, bad={b[0].hash})
    activate_best_chain(tree, rec.connect, rec.disconnect, lambda e: marked.extend(tree.mark_invalid(e)))
    assert marked == [b[0], b[1]] and tree.tip is tree.genesis
