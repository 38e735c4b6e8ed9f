"""The fuzz targets of benchmarks/fuzz.py in the test suite.

Always: every seed input and every input that once crashed a target (tests/fuzz_crashes/)
is replayed through its target, so a crash found stays fixed. With atheris installed
(the ``fuzz`` extra): a CI-sized coverage-guided run of a few seconds per target, which
must end without a crash and with coverage reported."""

from __future__ import annotations

import os
import random

import pytest

from benchmarks import fuzz

SECONDS = 4


@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_seed_corpus_and_past_crashes_replay_cleanly(target):
    fn = fuzz.TARGETS[target]
    inputs = list(fuzz.seed_corpus(target))
    crash_dir = os.path.join(fuzz.CRASH_DIR, target)
    if os.path.isdir(crash_dir):
        for name in sorted(os.listdir(crash_dir)):
            with open(os.path.join(crash_dir, name), "rb") as f:
                inputs.append(f.read())
    rng = random.Random(target)
    inputs += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300))) for _ in range(50)]
    for data in inputs:
        fn(data)


def test_the_block_rules_model_catches_a_wrong_verdict(monkeypatch):
    """The reference model is not a tautology: a validation that forgot the coinbase
    amount rule is caught."""
    import minichain.core.validation as v

    real = v.block_subsidy
    monkeypatch.setattr(v, "block_subsidy", lambda h, p: real(h, p) + 10**6)
    with pytest.raises(AssertionError):
        for seed in range(400):
            rng = random.Random(seed)
            fuzz.fuzz_block_rules(bytes(rng.randrange(256) for _ in range(120)))


@pytest.mark.skipif(not fuzz.have_atheris(), reason="atheris is not installed (pip install -e '.[fuzz]'); "
                    "the coverage-guided run is skipped, the replays above still run")
@pytest.mark.parametrize("target", sorted(fuzz.TARGETS))
def test_a_short_coverage_guided_run_finds_no_crash(target):
    stats = fuzz.run_target(target, SECONDS)
    assert stats["ok"], stats["output"]
    assert stats["execs"] > 0 and stats["cov"] > 0, stats["output"]
