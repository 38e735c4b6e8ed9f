"""Pairwise link keys: what lets replica ``i`` prove to replica ``j`` that a frame is from ``i``.

``testnet up`` draws one master secret and gives each replica a key file with the keys
of its own links only, ``K_ij = HMAC-SHA256(master, "minichain/replica-link/i-j")`` with
``i < j`` (a pairwise key, as PBFT's MAC authenticators use: Castro & Liskov 1999,
section 3). The master secret itself is not kept. Key files are JSON, mode 0600::

    {"format": "minichain-replica-keys", "node": 2, "n": 4, "links": {"0": HEX, "1": HEX, "3": HEX}}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets

FORMAT = "minichain-replica-keys"


class KeyFileError(ValueError):
    """A key file that cannot be used; ``str()`` says why."""


def pair_key(master: bytes, a: int, b: int) -> bytes:
    lo, hi = min(a, b), max(a, b)
    return hmac.new(master, f"minichain/replica-link/{lo}-{hi}".encode(), hashlib.sha256).digest()


def write_key_files(paths: list[str], master: bytes | None = None) -> None:
    """One key file per replica (``paths[i]`` for replica ``i``), from a fresh master secret."""
    master = master if master is not None else secrets.token_bytes(32)
    n = len(paths)
    for i, path in enumerate(paths):
        data = {"format": FORMAT, "node": i, "n": n,
                "links": {str(j): pair_key(master, i, j).hex() for j in range(n) if j != i}}
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def read_key_file(path: str, node: int, n: int) -> dict[int, bytes]:
    """Replica ``node``'s link keys, peer id -> key."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {path}") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KeyFileError(f"{path} is not a minichain replica key file")
    if data.get("node") != node or data.get("n") != n:
        raise KeyFileError(f"{path} holds the keys of replica {data.get('node')} of {data.get('n')}, "
                           f"not of replica {node} of {n}")
    try:
        keys = {int(j): bytes.fromhex(k) for j, k in data["links"].items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise KeyFileError(f"{path} is damaged (its link keys cannot be read)") from None
    if set(keys) != set(range(n)) - {node} or any(len(k) != 32 for k in keys.values()):
        raise KeyFileError(f"{path} does not hold one 32-byte key for each of the other {n - 1} replicas")
    return keys
