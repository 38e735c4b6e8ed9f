"""The README's wallet walkthrough runs as written (real processes, a mining node).

The block is taken from README.md and run by bash line for line; only the
environment differs (a temporary MINICHAIN_HOME, free ports through the node's
MINICHAIN_LISTEN/MINICHAIN_API and the client's MINICHAIN_NODE), and ``minichain``
is a shell function running this checkout, which before each client command waits for
the backgrounded node to print its ready line, as a person would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
from tests.readme import readme_block as shared_readme_block


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = "## A node, a wallet, mining and a payment"

pytestmark = pytest.mark.slow


def readme_block() -> str:
    return shared_readme_block(SECTION)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PRELUDE = r"""
set -euo pipefail
minichain() {
  if [ "$1" = node ]; then
    # exec: the backgrounded subshell becomes the node, so it holds no pipe of ours open
    exec "$PYTHON" -m minichain "$@" > node.out 2> node.log < /dev/null
  else
    for _ in $(seq 300); do grep -q "node ready" node.out 2>/dev/null && break; sleep 0.1; done
    "$PYTHON" -m minichain "$@"
  fi
}
"""


def test_the_readme_walkthrough_works_as_written(tmp_path):
    block = readme_block()
    assert "minichain wallet send" in block and "minichain mine 101" in block
    api = free_port()
    env = dict(os.environ, PYTHON=sys.executable, PYTHONPATH=ROOT, MINICHAIN_HOME=str(tmp_path / "home"),
               MINICHAIN_LISTEN="127.0.0.1:0", MINICHAIN_API=f"127.0.0.1:{api}", MINICHAIN_NODE=f"127.0.0.1:{api}")
    for var in ("MINICHAIN_NETWORK", "MINICHAIN_WALLET", "MINICHAIN_DATADIR"):
        env.pop(var, None)
    script = PRELUDE + block + "\necho WALKTHROUGH-DONE\n"
    try:
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=150)
    finally:
        ready = (tmp_path / "node.out").read_text() if (tmp_path / "node.out").exists() else ""
        pid = re.search(r"pid=(\d+)", ready)
        if pid:
            os.kill(int(pid.group(1)), signal.SIGTERM)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    os.kill(int(pid.group(1)), 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
    log = (tmp_path / "node.log").read_text()[-3000:] if (tmp_path / "node.log").exists() else "(no node log)"
    assert proc.returncode == 0 and "WALKTHROUGH-DONE" in proc.stdout, \
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}\n" \
        f"node.out: {ready!r}\nnode.log:\n{log}"
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    assert re.search(r"confirmed\s+│\s+1\.50000000", out), out[-2000:]   # bob's balance after one block
    assert "in the mempool" in out
    assert os.stat(tmp_path / "home" / "regtest" / "wallet.json").st_mode & 0o777 == 0o600
    assert os.stat(tmp_path / "bob.json").st_mode & 0o777 == 0o600
