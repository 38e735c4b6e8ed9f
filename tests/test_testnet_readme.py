"""The README's "Local testnet" block runs as written: bash runs it line for line in an
empty folder (so ``./testnet-data`` is the default directory), with ``minichain``
standing for this checkout's ``python -m minichain``. Real processes, real mining."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from minichain.testnet import network as tn
from tests.e2e.test_testnet_e2e import processes_under
from tests.readme import readme_block as shared_readme_block


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## Local testnet"

pytestmark = pytest.mark.slow


def readme_block() -> str:
    return shared_readme_block(SECTION)


def test_the_readme_local_testnet_block_runs_as_written(tmp_path):
    block = readme_block()
    assert block.startswith("minichain testnet up --nodes 4")
    script = ("set -euo pipefail\n"
              f'minichain() {{ "{sys.executable}" -m minichain "$@"; }}\n'
              "set -x\n" + block)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TMPDIR=str(tmp_path))  # the demo's temporary directory lands here too
    env.pop("MINICHAIN_TESTNET_DIR", None)
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                              timeout=150)
        assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr
        out = proc.stdout
        assert "4 node(s) up and synced at height" in out
        assert "partitioned: node0,node1 | node2,node3" in out
        assert re.search(r"every node at height \d+ \(tip [0-9a-f]{16}\)", out)
        assert "Summary" in out and "(the merchant's payment)" in out
        assert "stopped 4 node(s)" in out
        assert processes_under(str(tmp_path)) == []
    finally:
        if (tmp_path / "testnet-data" / "testnet.json").exists():
            try:
                tn.down(str(tmp_path / "testnet-data"))
            except Exception:  # noqa: BLE001 - cleaning up after a failure
                pass
        for pid in processes_under(str(tmp_path)):
            os.kill(pid, signal.SIGKILL)
