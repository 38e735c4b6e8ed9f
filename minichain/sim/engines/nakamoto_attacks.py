"""Dishonest miners for the Nakamoto engine: a double-spender and a selfish pool.

Both keep the honest node's machinery -- the node's peer protocol over a chain of the
public blocks -- and differ only in *where they mine* and *when they publish*. Publishing
is what a real node does with a block of its own: the block enters the attacker's chain
and the protocol announces it (headers, or an inv for a long branch), and peers fetch it
with getdata. They are marked ``honest = False`` so the simulator leaves their decisions
out of the safety metrics.
"""

from __future__ import annotations

from typing import Any, Hashable, Sequence

from minichain.core.chain import IndexEntry
from minichain.sim.engine import Action, NodeContext
from minichain.sim.engines.nakamoto import NakamotoNode, SimBlock, SimTx, World


class DoubleSpender(NakamotoNode):
    """Rosenfeld's attacker (2014, section 5), played out on the network.

    1. *Pre-mine*: mine on the public tip a private block holding ``refund`` (a payment
       back to himself that spends the coin of ``payment``). If the network finds a block
       first, the next attempt simply builds on the new tip (mining is memoryless).
    2. With one private block in hand, send ``payment`` to the network; honest miners put
       it in their next block and the merchant counts confirmations.
    3. Keep extending the private branch. Once the payment is ``z`` deep on the public
       chain (the merchant has delivered) and the private branch is longer than the
       public branch since the fork, publish it: every honest node reorgs to it and the
       payment is reversed.
    4. Give up when the public branch leads by ``give_up`` blocks.
    """

    honest = False

    def __init__(self, ctx: NodeContext, world: World, *, share: float, peers: Sequence[int],
                 payment: SimTx, refund: SimTx, z: int, give_up: int) -> None:
        super().__init__(ctx, world, share=share, peers=peers)
        self.payment = payment
        self.refund = refund
        self.z = z
        self.give_up = give_up
        self.fork: IndexEntry | None = None      # public block the private branch starts from
        self.private: list[SimBlock] = []
        self.outcome: str | None = None          # "published" or "gave up"
        self.paid_at: float | None = None

    def on_timer(self, name: Hashable) -> list[Action]:
        if name != "mine" or self.share <= 0 or self.outcome is not None:
            return []
        actions: list[Action] = []
        if self.fork is None:
            # Pre-mining: a private block with the refund on the public tip, then the
            # payment goes to the network like any wallet's transaction.
            self.fork = self.tree.tip
            self.private.append(self._new_block(self.fork, [self.refund]))
            self.paid_at = self.ctx.now
            actions.extend(self._submit_tx(self.payment))
        else:
            self.private.append(self._new_block_on(self.private[-1]))
        self._consider(actions)
        actions.extend(self._schedule_mining())
        return actions

    def _new_block_on(self, parent: SimBlock) -> SimBlock:
        self.mined += 1
        block = SimBlock.mine(parent, self.id, self.mined, (), time=self.world.genesis.header.time + int(self.ctx.now),
                              found_at=self.ctx.now, size=self.world.block_size)
        self.world.register(block)
        return block

    def on_message(self, src: int, msg: Any) -> list[Action]:
        actions = super().on_message(src, msg)
        if self.fork is not None and self.outcome is None:
            self._consider(actions)
        return actions

    def _consider(self, actions: list[Action]) -> None:
        assert self.fork is not None
        public_len = self.tree.tip.height - self.fork.height
        height = self.tx_height.get(self.payment.txid)
        depth = 0 if height is None else self.tree.tip.height - height + 1
        delivered = depth >= self.z if self.z > 0 else True
        if delivered and len(self.private) > public_len:
            self.outcome = "published"
            now = self.now()
            for block in self.private:            # the last one makes the branch the heaviest
                _, effects = self.protocol.local_block(block, now)
                actions.extend(self._finish(effects))
        elif public_len - len(self.private) >= self.give_up:
            self.outcome = "gave up"


class SelfishMiner(NakamotoNode):
    """Eyal & Sirer's selfish-mining pool (2014, Algorithm 1) on the network.

    The pool mines on the head of its private branch; ``tree`` is its view of the public
    blocks. With ``lead`` = private length - public length *before* a new public block:
    lead 0 -> adopt the public chain; 1 -> publish the private block (a tie race);
    2 -> publish everything (win by one); > 2 -> publish the oldest unpublished block.
    When the pool finds a block during a tie race, it publishes it and wins.
    """

    honest = False

    def __init__(self, ctx: NodeContext, world: World, *, share: float, peers: Sequence[int]) -> None:
        # The pool announces nothing for others: forwarding an honest block that competes
        # with its own would hand the tie race to the honest branch. Its own blocks go out
        # through ``_publish``.
        config = world.protocol_config()
        config.announce_blocks = False
        super().__init__(ctx, world, share=share, peers=peers, config=config)
        self.head: SimBlock = world.genesis     # where the pool mines
        self.branch: list[SimBlock] = []        # private branch since the last adoption
        self.published = 0                      # how many of ``branch`` are public
        self.public_height = 0
        self.ties: list[tuple[bytes, int]] = [] # (pool block hash, height) raced in a tie

    def on_timer(self, name: Hashable) -> list[Action]:
        if name != "mine" or self.share <= 0:
            return []
        actions: list[Action] = []
        lead_before = self.head.height - self.public_height
        self.mined += 1
        block = SimBlock.mine(self.head, self.id, self.mined, (), time=self.world.genesis.header.time + int(self.ctx.now),
                              found_at=self.ctx.now, size=self.world.block_size)
        self.world.register(block)
        self.branch.append(block)
        self.head = block
        if lead_before == 0 and len(self.branch) == 2 and self.published == 1:
            self._publish(len(self.branch), actions)   # tie race: publish and win
            self._reset_branch()
        actions.extend(self._schedule_mining())
        return actions

    def on_message(self, src: int, msg: Any) -> list[Action]:
        actions = super().on_message(src, msg)
        public = self.tree.best_candidate().height
        if public > self.public_height:
            lead = self.head.height - self.public_height   # before the new public block(s)
            self.public_height = public
            if lead <= 0 or self.head.height < public:
                self.head = self.world.blocks[self.tree.best_candidate().hash]
                self._reset_branch()
            elif lead == 1:
                self._publish(len(self.branch), actions)
                self.ties.append((self.head.hash, self.head.height))
            elif lead == 2:
                self._publish(len(self.branch), actions)
                self._reset_branch()
            else:
                self._publish(self.published + 1, actions)
        return actions

    def _reset_branch(self) -> None:
        self.branch = []
        self.published = 0

    def _publish(self, upto: int, actions: list[Action]) -> None:
        """Make ``branch[:upto]`` public (the new ones go out, oldest first)."""
        fresh = self.branch[self.published:upto]
        if not fresh:
            return
        self.published = upto
        now = self.now()
        for b in fresh:
            _, effects = self.protocol.local_block(b, now)
            actions.extend(self._finish(effects))
        self.public_height = max(self.public_height, self.tree.best_candidate().height)
        actions.extend(self._finish(self.protocol.announce([b.hash for b in fresh])))
