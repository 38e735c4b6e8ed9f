"""Child process for tests/test_crash.py: connect and reorganise blocks on a LevelDB store.

    python tests/crash_child.py DATADIR BLOCKFILE REPORTFILE MATURITY sync|nosync [WINDOW]

With ``sync`` every batch is fsynced, which widens the window between BEGIN and DONE.
``WINDOW`` (default 1) is the chain state's flush window: with more than 1, the batches
of up to WINDOW connects and disconnects are kept in memory and written as one
(``FlushPolicy(blocks=WINDOW, at_tip=False)``: by count only, as during a sync).

Appends to REPORTFILE, one line per event, written with os.write (no user-space
buffering, so a line written before SIGKILL is in the file):

    READY                 imports done, about to open the store
    MOVED <tip hex>       (WINDOW > 1) a connect or disconnect moved the tip in memory
    BEGIN <tip hex>       a batch that moves the stored tip is about to be committed
    DONE <tip hex>        that batch's write returned: the tip is fully connected on disk
    FINISHED              every block was delivered
"""

import dataclasses
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from minichain import params  # noqa: E402
from minichain.core.block import Block  # noqa: E402
from minichain.chainstate import ChainState  # noqa: E402
from minichain.chainstate.state import FlushPolicy  # noqa: E402
from minichain.store.cached import CachedStore  # noqa: E402
from minichain.store.leveldb import LevelDBStore  # noqa: E402

NOW = 2_000_000_000


def read_blocks(path):
    data = open(path, "rb").read()
    pos, out = 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(Block.deserialize(data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


def main():
    datadir, blockfile, reportfile, maturity, sync = sys.argv[1:6]
    window = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    fd = os.open(reportfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def report(line):
        os.write(fd, (line + "\n").encode())

    class ReportingStore(LevelDBStore):
        def write(self, batch):
            tip = batch.tip
            if tip is not None:
                report(f"BEGIN {tip.hex()}")
            super().write(batch)
            if tip is not None:
                report(f"DONE {tip.hex()}")

    class ReportingLayer(CachedStore):
        def write(self, batch):
            super().write(batch)
            if batch.tip is not None:
                report(f"MOVED {batch.tip.hex()}")

    p = dataclasses.replace(params.regtest, coinbase_maturity=int(maturity))
    blocks = read_blocks(blockfile)
    report("READY")
    store = ReportingStore(datadir, sync=(sync == "sync"))
    if window > 1:
        store = ReportingLayer(store)  # the chain state uses a layer it is given as it is
    state = ChainState(store, p, flush=FlushPolicy(blocks=window, at_tip=False))
    state.activate_best_chain()  # finish whatever a kill interrupted
    for block in blocks:
        state.accept_block(block, NOW)
    state.close()
    report("FINISHED")


if __name__ == "__main__":
    main()
