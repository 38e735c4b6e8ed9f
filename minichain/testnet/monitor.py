"""Prometheus for a testnet: a scrape config naming every node, and Debian's
``prometheus`` started on it.

Every node serves its metrics at ``/metrics`` on its API port (``node/metrics.py``).
``write_config`` writes ``DIR/prometheus/prometheus.yml``: one scrape job, one target
per node, labelled ``node="node0"`` and so on (the Grafana dashboard in
``testnet/grafana/`` filters and draws by that label). ``start`` runs the
``prometheus`` binary on 127.0.0.1 in a session of its own, like a node (its data in
``DIR/prometheus/data``, its log in ``DIR/prometheus/prometheus.log``), and waits for
its ``/-/ready``; ``stop`` ends it (``testnet down`` does). The state file keeps its pid
and port, and ``alive`` recognises it by the config path on its command line.

Prometheus is not a Python package: Debian and Ubuntu have it (``apt-get install
prometheus``), and elsewhere it is one static binary from prometheus.io. Without it the
config is still written, for a Prometheus run by hand or on another machine.

``query`` and ``query_range`` are a small client of Prometheus's HTTP API (``/api/v1``),
for the tests and for ``testnet panels``.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from minichain.testnet import process
from minichain.testnet.state import TestnetState

SUBDIR = "prometheus"
CONFIG = "prometheus.yml"
DEFAULT_PORT = 9090               # Prometheus's own default
SCRAPE_INTERVAL = 2.0             # seconds: testnet blocks come every few seconds
READY_TIMEOUT = 30.0
INSTALL_HINT = "apt-get install prometheus (Debian, Ubuntu), or a release from https://prometheus.io/download/"


class MonitorError(Exception):
    """Prometheus could not be started or asked; ``str()`` says why."""


@dataclass
class Monitor:
    pid: int
    port: int
    config: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> dict:
        return {"pid": self.pid, "port": self.port, "config": self.config}

    @classmethod
    def from_json(cls, data: dict | None) -> "Monitor | None":
        if not data:
            return None
        return cls(int(data["pid"]), int(data["port"]), str(data["config"]))

    def alive(self) -> bool:
        return process.alive(self.pid, self.config)


def find_prometheus() -> str | None:
    """The prometheus binary: ``$MINICHAIN_PROMETHEUS``, else the one on PATH."""
    return os.environ.get("MINICHAIN_PROMETHEUS") or shutil.which("prometheus")


def config_path(state: TestnetState) -> str:
    return os.path.join(state.directory, SUBDIR, CONFIG)


def render_config(state: TestnetState, interval: float = SCRAPE_INTERVAL) -> str:
    """The scrape config (YAML) for every node of ``state``."""
    lines = [
        "# Written by 'minichain testnet up --monitor': every node's /metrics (on its API port).",
        "global:",
        f"  scrape_interval: {interval:g}s",
        f"  evaluation_interval: {interval:g}s",
        "scrape_configs:",
        "  - job_name: minichain",
        "    metrics_path: /metrics",
        "    static_configs:",
    ]
    for rec in state.nodes:
        lines += [f"      - targets: ['127.0.0.1:{rec.api_port}']",
                  f"        labels: {{node: '{rec.name}', network: '{state.network}'}}"]
    return "\n".join(lines) + "\n"


def write_config(state: TestnetState, interval: float = SCRAPE_INTERVAL) -> str:
    path = config_path(state)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(render_config(state, interval))
    os.replace(tmp, path)
    return path


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(state: TestnetState, binary: str, port: int = DEFAULT_PORT, timeout: float = READY_TIMEOUT) -> Monitor:
    """Run ``binary`` on the testnet's config, on 127.0.0.1:``port`` (another free port if
    that one is taken); returns once Prometheus answers ``/-/ready``."""
    config = config_path(state)
    where = os.path.dirname(config)
    log_path = os.path.join(where, "prometheus.log")
    if not _port_free(port):
        port = _free_port()
    # The config path is an argument of its own: process.alive() finds it on the command line.
    args = [binary, "--config.file", config, "--storage.tsdb.path", os.path.join(where, "data"),
            "--web.listen-address", f"127.0.0.1:{port}"]
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} minichain testnet: starting {' '.join(args)}\n".encode())
        log.flush()
        offset = log.tell()
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, cwd=where)
        except OSError as exc:
            raise MonitorError(f"cannot run {binary}: {exc.strerror or exc}") from None
    monitor = Monitor(proc.pid, port, config)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MonitorError(f"prometheus exited ({proc.returncode}) at once; the end of its log ({log_path}):\n"
                               f"{process.log_tail(log_path, 6, offset)}")
        try:
            with urllib.request.urlopen(f"{monitor.url}/-/ready", timeout=2) as resp:
                if resp.status == 200:
                    return monitor
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    stop(monitor)
    raise MonitorError(f"prometheus was not ready within {timeout:g}s; the end of its log ({log_path}):\n"
                       f"{process.log_tail(log_path, 6, offset)}")


def stop(monitor: Monitor | None, timeout: float = 10.0) -> bool:
    """Stop Prometheus if it runs; True if it was running."""
    if monitor is None or not monitor.alive():
        return False
    process.stop_all([(monitor.pid, monitor.config)], timeout=timeout)
    return True


# -- Prometheus's HTTP API ------------------------------------------------------------------------


def _get(url: str, path: str, params: dict, timeout: float) -> dict:
    full = f"{url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            data = json.loads(exc.read())
        except ValueError:
            raise MonitorError(f"prometheus at {url} answered {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MonitorError(f"cannot ask prometheus at {url}: {exc}") from None
    if data.get("status") != "success":
        raise MonitorError(f"prometheus refused {params.get('query')!r}: {data.get('error', data)}")
    return data["data"]


def query(url: str, expr: str, timeout: float = 10.0) -> list[dict]:
    """An instant query: ``[{"metric": {labels}, "value": [time, "value"]}, ...]``."""
    return _get(url, "/api/v1/query", {"query": expr}, timeout)["result"]


def query_range(url: str, expr: str, start: float, end: float, step: float, timeout: float = 30.0) -> list[dict]:
    """A range query: ``[{"metric": {labels}, "values": [[time, "value"], ...]}, ...]``."""
    return _get(url, "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step},
                timeout)["result"]
