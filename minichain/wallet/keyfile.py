"""The wallet's key file: one secret seed from which every key is derived.

The file is JSON, readable only by its owner (mode 0600), and looks like::

    {"format": "minichain-wallet", "version": 1, "network": "regtest",
     "seed": "<64 hex digits>", "receive": 3, "change": 1, "checksum": "<16 hex digits>"}

``receive`` and ``change`` count the addresses handed out on each of the two chains;
``checksum`` is the first 8 bytes of SHA-256 over the other fields (canonical JSON), so
a file damaged on disk or edited by hand is refused instead of silently deriving
different keys.

Key ``i`` of a chain is derived as ``d = HMAC-SHA256(seed, "minichain-wallet/v1/<chain>/<i>/<try>")``
read as a big-endian integer, taking the first ``try`` (0, 1, ...) for which
1 <= d < n. Simplification, said plainly: this is *not* BIP 32 (no extended public
keys, no hardened/non-hardened split) -- just enough determinism that backing up the
file once keeps every key it will ever hand out, and that two processes which both
bump a counter can at worst hand out the same address twice, never lose a key.

Nothing in this module prints, logs or returns the seed or a private key as text; the
CLI has no command that does either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from typing import Iterator

from minichain import params as chain_params
from minichain.core.keys import CURVE_N, PrivateKey

FORMAT = "minichain-wallet"
VERSION = 1
SEED_SIZE = 32
CHAINS = ("receive", "change")
MAX_INDEX = 1_000_000  # far beyond any real use; bounds a hostile file's counters
MAX_FILE_SIZE = 64 * 1024
DEFAULT_FILE_NAME = "wallet.json"


class WalletFileError(Exception):
    """The key file is missing, exposed, damaged or for another network; ``str()`` says
    which and what to do about it."""


def _checksum(fields: dict) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).digest()[:8].hex()


def derive_key(seed: bytes, chain: str, index: int) -> PrivateKey:
    """Key ``index`` of ``chain`` ("receive" or "change"), deterministically from ``seed``."""
    if chain not in CHAINS:
        raise ValueError(f"chain must be one of {CHAINS}, got {chain!r}")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"key index {index} out of range")
    attempt = 0
    while True:  # a d outside [1, n-1] has probability ~2^-128; try the next one if it happens
        msg = f"minichain-wallet/v{VERSION}/{chain}/{index}/{attempt}".encode()
        d = int.from_bytes(hmac.new(seed, msg, hashlib.sha256).digest(), "big")
        if 0 < d < CURVE_N:
            return PrivateKey(d)
        attempt += 1


class KeyFile:
    """A loaded key file. Create one with :meth:`create`, open one with :meth:`load`."""

    __slots__ = ("path", "network", "_seed", "counts", "_keys")

    def __init__(self, path: str, network: str, seed: bytes, counts: dict[str, int]) -> None:
        self.path = path
        self.network = network
        self._seed = seed
        self.counts = dict(counts)
        self._keys: dict[tuple[str, int], PrivateKey] = {}

    def __repr__(self) -> str:  # never the seed
        return f"KeyFile({self.path!r}, network={self.network!r}, receive={self.counts['receive']}, change={self.counts['change']})"

    @property
    def params(self) -> chain_params.Params:
        return chain_params.by_name(self.network)

    # -- keys and addresses -----------------------------------------------------------------

    def key(self, chain: str, index: int) -> PrivateKey:
        k = self._keys.get((chain, index))
        if k is None:
            k = self._keys[(chain, index)] = derive_key(self._seed, chain, index)
        return k

    def address(self, chain: str, index: int) -> str:
        return self.key(chain, index).public_key.address(self.params.address_version)

    def issued(self) -> Iterator[tuple[str, int, str]]:
        """(chain, index, address) of every address handed out so far, receive chain first."""
        for chain in CHAINS:
            for i in range(self.counts[chain]):
                yield chain, i, self.address(chain, i)

    def keys_by_address(self) -> dict[str, PrivateKey]:
        return {addr: self.key(chain, i) for chain, i, addr in self.issued()}

    def next_address(self, chain: str = "receive") -> str:
        """Hand out the next unused address of ``chain``. The counter is saved to disk
        *before* the address is returned, so no address is ever handed out twice by one
        process, and a crash can only skip an index, never reuse one."""
        if chain not in CHAINS:
            raise ValueError(f"chain must be one of {CHAINS}")
        index = self.counts[chain]
        if index >= MAX_INDEX:
            raise WalletFileError(f"{self.path} has handed out {index} {chain} addresses, the most it can")
        self.counts[chain] = index + 1
        try:
            self.save()
        except BaseException:
            self.counts[chain] = index
            raise
        return self.address(chain, index)

    # -- the file ---------------------------------------------------------------------------

    def _fields(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "network": self.network, "seed": self._seed.hex(),
                "receive": self.counts["receive"], "change": self.counts["change"]}

    def _contents(self) -> bytes:
        fields = self._fields()
        fields["checksum"] = _checksum(fields)
        return (json.dumps(fields, indent=1) + "\n").encode()

    def save(self) -> None:
        """Replace the file atomically (write a 0600 sibling, fsync, rename)."""
        _write_atomically(self.path, self._contents())

    @classmethod
    def create(cls, path: str, network: str, *, force: bool = False, seed: bytes | None = None) -> tuple["KeyFile", str | None]:
        """Write a new key file with a fresh random seed. Without ``force`` an existing
        file is refused; with it the old file is kept beside the new one as
        ``<path>.replaced-<unix time>`` (the only copy of its keys may be in it) and that
        name is returned as the second value."""
        chain_params.by_name(network)  # raises ValueError for an unknown network
        if seed is None:
            seed = secrets.token_bytes(SEED_SIZE)
        if len(seed) != SEED_SIZE:
            raise ValueError(f"seed must be {SEED_SIZE} bytes")
        wallet = cls(path, network, seed, {"receive": 0, "change": 0})
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, mode=0o700, exist_ok=True)
        kept = None
        if os.path.lexists(path):
            if not force:
                raise WalletFileError(
                    f"a wallet already exists at {path}; refusing to overwrite it (its keys may hold coins). "
                    "Use --wallet to create another file, or --force to replace it (the old file is kept aside)."
                )
            kept = f"{path}.replaced-{int(time.time())}"
            n = 1
            while os.path.lexists(kept):
                kept = f"{path}.replaced-{int(time.time())}-{n}"
                n += 1
            os.rename(path, kept)
        # O_EXCL: if another process creates the file between the check and here, we fail
        # rather than overwrite it.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise WalletFileError(f"a wallet appeared at {path} while creating one; refusing to overwrite it") from None
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(wallet._contents())
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(directory)
        return wallet, kept

    @classmethod
    def load(cls, path: str) -> "KeyFile":
        """Open a key file, refusing one that others can read or that is damaged."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise WalletFileError(f"no wallet at {path}; create one with 'minichain wallet new' "
                                  "(or point at yours with --wallet FILE)") from None
        except OSError as exc:
            if os.path.islink(path):
                raise WalletFileError(f"{path} is a symbolic link; point --wallet at the key file itself") from None
            raise WalletFileError(f"cannot open the wallet {path}: {exc.strerror or exc}") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise WalletFileError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb") as f:
            if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
                raise WalletFileError(f"{path} belongs to another user (uid {st.st_uid}); a key file must be your own")
            mode = stat.S_IMODE(st.st_mode)
            if mode & 0o077:
                raise WalletFileError(
                    f"{path} can be read or changed by other users (mode {mode:04o}); it holds your private keys. "
                    f"Make it private with: chmod 600 {path}"
                )
            raw = f.read(MAX_FILE_SIZE + 1)
        return cls._parse(path, raw)

    @classmethod
    def _parse(cls, path: str, raw: bytes) -> "KeyFile":
        def corrupt(why: str) -> WalletFileError:
            return WalletFileError(f"the wallet {path} is damaged ({why}); restore it from your backup")

        if len(raw) > MAX_FILE_SIZE:
            raise corrupt("far larger than a key file")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise corrupt("not valid JSON") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise corrupt("not a minichain key file")
        if data.get("version") != VERSION:
            raise WalletFileError(f"{path} is a version {data.get('version')!r} key file; "
                                  f"this minichain reads version {VERSION}")
        expected = {"format", "version", "network", "seed", "receive", "change", "checksum"}
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise corrupt(", ".join(filter(None, [missing and f"missing {sorted(missing)}",
                                                   extra and f"unexpected {sorted(extra)}"])))
        checksum = data.pop("checksum")
        if not isinstance(checksum, str) or not hmac.compare_digest(checksum, _checksum(data)):
            raise corrupt("checksum mismatch")
        network, seed_hex = data["network"], data["seed"]
        if network not in chain_params.NETWORKS:
            raise corrupt(f"unknown network {network!r}")
        if not isinstance(seed_hex, str) or len(seed_hex) != 2 * SEED_SIZE:
            raise corrupt("the seed is not 32 bytes")
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError:
            raise corrupt("the seed is not hex") from None
        counts = {}
        for chain in CHAINS:
            n = data[chain]
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_INDEX:
                raise corrupt(f"{chain!r} is not a count")
            counts[chain] = n
        return cls(path, network, seed, counts)


def _fsync_dir(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


def _write_atomically(path: str, contents: bytes) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(contents)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
