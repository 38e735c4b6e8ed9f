"""Real node processes on 127.0.0.1 for end-to-end tests (Bitcoin Core's functional
test framework in miniature): start, stop, kill, connect, partition, and wait for sync
with a timeout that prints every node's tip when it fails."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Callable

READY = re.compile(r"minichain node ready network=(\S+) p2p=([\d.]+):(\d+) api=([\d.]+):(\d+)")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class NodeError(AssertionError):
    pass


class NodeProcess:
    def __init__(self, workdir: str, name: str, network: str = "regtest", extra: list[str] | None = None, *,
                 root: str = ROOT, env: dict[str, str] | None = None) -> None:
        self.name = name
        self.network = network
        self.datadir = os.path.join(workdir, name)
        self.extra = list(extra or [])
        self.root = root       # the source tree the node runs from (a benchmark's baseline may be another)
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.p2p_port = 0
        self.api_port = 0
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, *args: str, timeout: float = 30.0, nofile: int | None = None) -> "NodeProcess":
        """Start the node (``nofile``: its limit on open files, soft and hard)."""
        listen = f"127.0.0.1:{self.p2p_port}"  # the same port again after a restart
        cmd = [sys.executable, "-m", "minichain", "node", "--network", self.network, "--datadir", self.datadir,
               "--listen", listen, "--api", "127.0.0.1:0", "--log-level", "debug", *self.extra, *args]
        self._log = open(self.log_path, "a")
        env = dict(os.environ, **self.env)
        env["PYTHONPATH"] = self.root + os.pathsep + os.environ.get("PYTHONPATH", "")
        preexec = None
        if nofile is not None:
            import resource

            def preexec() -> None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True, env=env, cwd=self.root,
                                     preexec_fn=preexec)
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line and self.proc.poll() is not None:
                break
            match = READY.search(line)
            if match:
                self.p2p_port = int(match.group(3))
                self.api_port = int(match.group(5))
                return self
        raise NodeError(f"node {self.name} did not start (exit {self.proc.poll()}); last line {line!r}; "
                        f"log tail:\n{self.log_tail()}")

    def stop(self, timeout: float = 15.0) -> int:
        return self._signal(signal.SIGTERM, timeout)

    def kill(self) -> int:
        return self._signal(signal.SIGKILL, 10.0)

    def _signal(self, sig: int, timeout: float) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
            raise NodeError(f"node {self.name} ignored signal {sig} for {timeout}s")
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            if self._log:
                self._log.close()
        return code

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far, user and system (Linux: /proc/PID/stat)."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss(self) -> int:
        """The process's peak resident memory so far, in bytes (Linux: VmHWM)."""
        assert self.proc is not None
        return peak_rss(self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    # -- API -------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    @property
    def token(self) -> str:
        with open(os.path.join(self.datadir, ".cookie")) as f:
            return f.read().strip()

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                raw: bytes | None = None, timeout: float = 30.0) -> tuple[int, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.api_port}{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                return exc.code, json.loads(payload)
            except json.JSONDecodeError:
                return exc.code, payload.decode(errors="replace")

    def get(self, path: str) -> Any:
        code, data = self.request("GET", path)
        if code != 200:
            raise NodeError(f"GET {path} on {self.name}: {code} {data}")
        return data

    def control(self, action: str, body: Any = None) -> Any:
        code, data = self.request("POST", f"/api/control/{action}", body or {}, token=self.token, timeout=120)
        if code != 200:
            raise NodeError(f"control {action} on {self.name}: {code} {data}")
        return data

    def status(self) -> dict:
        return self.get("/api/status")

    def generate(self, blocks: int, address: str) -> list[str]:
        return self.control("generate", {"blocks": blocks, "address": address})["blocks"]

    def connect(self, other: "NodeProcess") -> None:
        self.control("peers/add", {"address": other.address})


def peak_rss(pid: int | str = "self") -> int:
    """Peak resident memory of a process in bytes, from /proc (0 where there is none)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def wait_until(predicate: Callable[[], bool], timeout: float, describe: Callable[[], str], interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (OSError, NodeError):
            pass
        time.sleep(interval)
    raise NodeError(f"timed out after {timeout}s: {describe()}")


def tips(nodes: list[NodeProcess]) -> str:
    out = []
    for n in nodes:
        try:
            s = n.status()
            out.append(f"  {n.name}: height {s['height']} tip {s['tip'][:16]} peers {s['peers']} mempool {s['mempool']['size']}")
        except Exception as exc:  # noqa: BLE001 - a report, whatever went wrong
            out.append(f"  {n.name}: unreachable ({exc})")
    return "\n" + "\n".join(out)


def sync_blocks(nodes: list[NodeProcess], timeout: float = 60.0, height: int | None = None) -> str:
    """Wait until every node has the same tip (at ``height`` if given); returns it."""
    def same() -> bool:
        states = [n.status() for n in nodes]
        tips_ = {s["tip"] for s in states}
        return len(tips_) == 1 and (height is None or states[0]["height"] == height)

    wait_until(same, timeout, lambda: "nodes did not sync:" + tips(nodes))
    return nodes[0].status()["tip"]


def wait_peers(node: NodeProcess, count: int, timeout: float = 20.0) -> None:
    wait_until(lambda: node.status()["peers"] >= count, timeout,
               lambda: f"{node.name} has fewer than {count} peers:" + tips([node]))
