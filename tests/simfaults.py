"""The seeded fault mix of the BFT engines' safety and liveness runs (shared by their test
files; it lives in ``minichain/sim/adversary/faultmix.py`` so the benchmark runs it too)."""

from minichain.sim.adversary.faultmix import (  # noqa: F401
    BEHAVIOURS, FAULTS_OVER, PAYMENTS, committed_counts, every_honest_replica_committed_all, random_fault_run,
)
