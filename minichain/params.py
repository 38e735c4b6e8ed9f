"""Chain parameters.

Three frozen presets:

* ``main``    -- Bitcoin's real constants. Used to check real Bitcoin data (headers,
                 difficulty retargets); a minichain node does not run on it.
* ``testnet`` -- a local multi-node network: blocks every few seconds, a short retarget
                 window so difficulty follows the machine's real hash rate, low maturity.
* ``regtest`` -- for tests: a trivial target (about every second hash wins) and no
                 retargeting, so blocks are instant.

Each field is tagged with the name Bitcoin Core gives it (chainparams.cpp,
consensus/params.h, consensus/consensus.h, validation.cpp, chain.h, amount.h).
"""

from __future__ import annotations

from dataclasses import dataclass

# Bitcoin: COIN (amount.h) -- amounts are integers of 10^-8 coin.
COIN = 100_000_000
# Bitcoin: MAX_MONEY (amount.h) -- no amount, single or summed, may exceed this.
MAX_MONEY = 21_000_000 * COIN


@dataclass(frozen=True, slots=True)
class Params:
    name: str
    # Bitcoin: consensus.powLimit, given in compact form (the easiest target allowed).
    pow_limit_bits: int
    # Bitcoin: consensus.nPowTargetSpacing (seconds between blocks, on average).
    target_spacing: int
    # Bitcoin: consensus.nPowTargetTimespan (seconds one retarget window should last).
    target_timespan: int
    # Bitcoin: consensus.fPowNoRetargeting.
    no_retarget: bool
    # Bitcoin: consensus.nSubsidyHalvingInterval (blocks).
    halving_interval: int
    # Bitcoin: the initial subsidy, 50 * COIN, in GetBlockSubsidy (validation.cpp).
    initial_subsidy: int
    # Bitcoin: COINBASE_MATURITY (consensus.h) -- confirmations before a coinbase is spendable.
    coinbase_maturity: int
    # Bitcoin: MAX_FUTURE_BLOCK_TIME (chain.h) -- seconds a block time may run ahead of now.
    max_future_block_time: int
    # Bitcoin: CBlockIndex::nMedianTimeSpan (chain.h) -- blocks in the median-time-past.
    median_time_span: int
    # Bitcoin: MAX_BLOCK_SIZE of the pre-segwit rules (1 MB), serialized bytes.
    max_block_size: int
    # Bitcoin: base58Prefixes[PUBKEY_ADDRESS] -- the version byte of an address.
    address_version: int
    # Genesis block: Bitcoin hard-codes it in CreateGenesisBlock (chainparams.cpp).
    genesis_time: int
    genesis_bits: int
    genesis_nonce: int
    genesis_message: bytes

    @property
    def retarget_interval(self) -> int:
        """Bitcoin: DifficultyAdjustmentInterval() = nPowTargetTimespan / nPowTargetSpacing."""
        return self.target_timespan // self.target_spacing

    @property
    def pow_limit(self) -> int:
        from minichain.core.pow import bits_to_target

        return bits_to_target(self.pow_limit_bits)


main = Params(
    name="main",
    pow_limit_bits=0x1D00FFFF,
    target_spacing=10 * 60,
    target_timespan=14 * 24 * 60 * 60,  # 2016 blocks
    no_retarget=False,
    halving_interval=210_000,
    initial_subsidy=50 * COIN,
    coinbase_maturity=100,
    max_future_block_time=2 * 60 * 60,
    median_time_span=11,
    max_block_size=1_000_000,
    address_version=0x00,
    # Bitcoin's own genesis header fields (block 000000000019d6...e26f).
    genesis_time=1231006505,
    genesis_bits=0x1D00FFFF,
    genesis_nonce=2083236893,
    genesis_message=b"The Times 03/Jan/2009 Chancellor on brink of second bailout for banks",
)

testnet = Params(
    name="testnet",
    # A target of about 2^240: the first blocks take ~65,000 hashes, and the factor-4
    # retarget climbs to the network's real hash rate within a few short windows.
    pow_limit_bits=0x1F00FFFF,
    target_spacing=5,
    target_timespan=12 * 5,  # retarget every 12 blocks
    no_retarget=False,
    halving_interval=210_000,
    initial_subsidy=50 * COIN,
    coinbase_maturity=5,
    max_future_block_time=2 * 60 * 60,
    median_time_span=11,
    max_block_size=1_000_000,
    address_version=0x6F,  # Bitcoin testnet's PUBKEY_ADDRESS prefix ("m" / "n" addresses)
    # In the past: a block's time must exceed its parent's median time past and be at
    # most max_future_block_time ahead of the clock, so a genesis dated in the future
    # leaves nothing minable until the clock reaches it.
    genesis_time=1704067200,  # 2024-01-01T00:00:00Z
    genesis_bits=0x1F00FFFF,
    genesis_nonce=2355,  # found by core/genesis.py find_genesis_nonce
    genesis_message=b"minichain testnet genesis",
)

regtest = Params(
    name="regtest",
    # Bitcoin: regtest powLimit 0x7fff...ff, compact 0x207fffff -- every other hash wins.
    pow_limit_bits=0x207FFFFF,
    target_spacing=10 * 60,
    target_timespan=14 * 24 * 60 * 60,
    no_retarget=True,
    halving_interval=150,  # Bitcoin regtest's nSubsidyHalvingInterval
    initial_subsidy=50 * COIN,
    coinbase_maturity=100,
    max_future_block_time=2 * 60 * 60,
    median_time_span=11,
    max_block_size=1_000_000,
    address_version=0x6F,
    genesis_time=1296688602,  # Bitcoin regtest genesis nTime
    genesis_bits=0x207FFFFF,
    genesis_nonce=2,  # found by core/genesis.py find_genesis_nonce
    genesis_message=b"minichain regtest genesis",
)

NETWORKS: dict[str, Params] = {p.name: p for p in (main, testnet, regtest)}


def by_name(name: str) -> Params:
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
