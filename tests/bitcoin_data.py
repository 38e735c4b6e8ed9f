"""Real Bitcoin mainnet data, for checking our rules against the real chain.

Header fields and hashes are as any block explorer or `bitcoin-cli getblockheader`
prints them (display byte order). The tests hash and validate them; a wrong digit here
would make those tests fail, not pass.
"""

# (height, hash, version, prev, merkle_root, time, bits, nonce)
HEADERS = [
    (0, "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f", 1,
     "0000000000000000000000000000000000000000000000000000000000000000",
     "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b",
     1231006505, 0x1D00FFFF, 2083236893),
    (1, "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048", 1,
     "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
     "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098",
     1231469665, 0x1D00FFFF, 2573394689),
    (2, "000000006a625f06636b8bb6ac7b960a8d03705d1ace08b1a19da3fdcc99ddbd", 1,
     "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048",
     "9b0fc92260312ce44e74ef369f5c66bbb85848f2eddd5a7a1cde251e54ccfdd5",
     1231469744, 0x1D00FFFF, 1639830024),
    (170, "00000000d1145790a8694403d4063f323d499e655c83426834d4ce2f8dd4a2ee", 1,
     "000000002a22cfee1f2c846adbd12b3e183d4f97683f85dad08a79780a84bd55",
     "7dac2c5666815c17a3b36427de37bb9d2e2c5ccec3f8633eb91a4205cb4c10ff",
     1231731025, 0x1D00FFFF, 1889418792),
]

# Block 170: the first block with a payment (Satoshi to Hal Finney). Its two txids, in
# block order, must give the header's merkle root.
BLOCK_170_TXIDS = [
    "b1fea52486ce0c62bb442b530a3f0132b826c74e473d1f2c220bfa78111c5082",
    "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16",
]

# Bitcoin Core src/test/pow_tests.cpp: (first block time, last block time, last bits,
# expected next bits) for CalculateNextWorkRequired on mainnet parameters.
RETARGETS = [
    # get_next_work: blocks #30240 .. #32255
    (1261130161, 1262152739, 0x1D00FFFF, 0x1D00D86A),
    # get_next_work_pow_limit: blocks #0 .. #2015, capped at the pow limit
    (1231006505, 1233061996, 0x1D00FFFF, 0x1D00FFFF),
    # get_next_work_lower_limit_actual: blocks #66528 .. #68543, clamped at timespan/4
    (1279008237, 1279297671, 0x1C05A3F4, 0x1C0168FD),
    # get_next_work_upper_limit_actual: blocks #46368 .. #48383, clamped at timespan*4
    (1263163443, 1269211443, 0x1C387F6F, 0x1D00E1FD),
]
