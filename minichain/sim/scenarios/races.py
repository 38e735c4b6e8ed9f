"""Fast paths: the block races of the double-spend and selfish-mining analyses, without a network.

When propagation is instant compared with the block interval, which miner finds the next
block is all that matters, and each block is the attacker's with probability ``q``
independently (Poisson processes superposed: Nakamoto 2008 section 11, Rosenfeld 2014
section 3, Eyal & Sirer 2014 section 4). These functions play exactly that race, block
by block, so hundreds of thousands of trials take seconds. The tests check them against
the full network simulation (``engines/nakamoto_attacks.py``) on the same questions.

Nothing here uses the closed forms of ``analytic.py``: the race is measured, then compared.
"""

from __future__ import annotations

import math
import random


def give_up_deficit(q: float, eps: float = 1e-7) -> int:
    """The deficit at which a double-spender abandons the race.

    From ``d`` blocks behind, an attacker with ``q < 1/2`` ever gets ahead with probability
    ``(q/p)^(d+1)`` (gambler's ruin), so stopping there changes a trial's success
    probability by less than ``eps``: a bias far below the confidence intervals we report.
    """
    p = 1.0 - q
    if q <= 0.0:
        return 0
    if q >= p:
        raise ValueError("an attacker with q >= 1/2 never falls behind for good: no finite race")
    return max(1, math.ceil(math.log(eps) / math.log(q / p)) - 1)


def double_spend_race(q: float, z: int, rng: random.Random, give_up: int) -> bool:
    """One double-spend attempt under Rosenfeld's model (2014, section 5).

    The attacker has pre-mined one private block holding a conflicting payment when he
    sends the merchant the payment; honest miners put the payment in their next block;
    the merchant delivers after ``z`` confirmations (``z`` honest blocks on the honest
    branch). The attacker wins if, once the merchant has delivered, his branch is ever
    *longer* than the honest one (a tie loses: nodes keep the branch they saw first).

    Each step draws the number of attacker blocks before the next honest block, a
    geometric variable (``floor(log U / log q)``), instead of one Bernoulli per block.
    """
    if q <= 0.0:
        return z == 0
    log_q = math.log(q)
    attacker, honest = 1, 0
    rand = rng.random
    # While the merchant waits: attacker blocks before each of the z honest blocks.
    for _ in range(z):
        attacker += int(math.log(1.0 - rand()) / log_q)
        honest += 1
    if attacker > honest:
        return True
    while True:
        k = int(math.log(1.0 - rand()) / log_q)    # attacker blocks before the next honest one
        if attacker + k > honest:
            return True
        attacker += k
        honest += 1
        if honest - attacker >= give_up:
            return False


def double_spend_trials(q: float, z: int, trials: int, rng: random.Random, eps: float = 1e-7) -> int:
    """Successes out of ``trials`` independent races."""
    if q <= 0.0:
        return trials if z == 0 else 0
    give_up = give_up_deficit(q, eps)
    race = double_spend_race
    return sum(race(q, z, rng, give_up) for _ in range(trials))


def selfish_mining_race(alpha: float, gamma: float, blocks: int, rng: random.Random) -> tuple[int, int]:
    """Eyal & Sirer's selfish-mining strategy (2014, Algorithm 1), block by block.

    State: the pool's private lead, and whether a published tie (two branches of one block
    each) is being raced. Each new block is the pool's with probability ``alpha``; in a
    tie, a fraction ``gamma`` of the honest miners mine on the pool's block. Blocks are
    credited when their fate is sealed. Returns (pool blocks, honest blocks) in the main
    chain after ``blocks`` block discoveries.
    """
    pool = honest = 0
    lead = 0
    tie = False
    rand = rng.random
    for _ in range(blocks):
        if rand() < alpha:                     # the pool finds a block
            if tie:
                pool += 2                      # it publishes and wins the tie with two blocks
                tie = False
            else:
                lead += 1
        else:                                  # the honest network finds a block
            if tie:
                if rand() < gamma:
                    pool += 1                  # mined on the pool's block: pool's block wins
                    honest += 1
                else:
                    honest += 2                # mined on the honest block
                tie = False
            elif lead == 0:
                honest += 1
            elif lead == 1:
                lead = 0                       # the pool publishes its block: a tie
                tie = True
            elif lead == 2:
                pool += 2                      # the pool publishes both and wins
                lead = 0
            else:
                pool += 1                      # it publishes one, staying ahead by lead - 1
                lead -= 1
    return pool, honest
