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

**Encrypted at rest** (version 2, ``wallet new --encrypt`` or ``wallet encrypt``): the
seed is sealed under a passphrase (scrypt, then ChaCha20-Poly1305: see encryption.py)
and only public data stays in clear::

    {"format": "minichain-wallet", "version": 2, "network": "regtest",
     "encryption": {"kdf": "scrypt", "n": 131072, ..., "ciphertext": "<hex>"},
     "addresses": {"receive": ["mx...", ...], "change": [...]},
     "receive": 3, "change": 1, "checksum": "<16 hex digits>"}

``addresses`` lists every address handed out *plus a pool of* ``KEYPOOL_SIZE`` *more per
chain* (Bitcoin Core's keypool, which an encrypted wallet keeps for the same reason):
balance, history, coins and new receiving addresses need no passphrase; signing does,
and so does handing out an address once the pool is used up (the pool is refilled
whenever the wallet is unlocked). The network and the address lists are the AEAD's
associated data, so a changed address is detected when the wallet is next unlocked;
the counters are not (they change without the passphrase), and an address handed out
*before* that unlock is trusted as written. Said plainly: the file's clear part shows
which addresses are yours to whoever reads it (as Bitcoin Core's encrypted wallets show
their public keys), and someone who can *write* the file could swap the addresses a
locked wallet hands out; the encryption protects the keys, not the file.

The derivation below is the same for both versions: ``wallet encrypt`` keeps every key
and address of a plaintext wallet.

Nothing in this module prints, logs or returns the seed or a private key as text; the
CLI has no command that does either. With a passphrase, neither the seed nor a key is
ever written to disk unencrypted, not even to a temporary file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from typing import Callable, Iterator

from minichain import params as chain_params
from minichain.core.keys import CURVE_N, AddressError, PrivateKey, decode_address
from minichain.wallet import encryption
from minichain.wallet.encryption import SealingKey, ScryptCost, Tampered, WrongPassphrase

FORMAT = "minichain-wallet"
VERSION = 1            # the plaintext format
VERSION_ENCRYPTED = 2  # the seed sealed under a passphrase, public addresses in clear
DERIVATION = "minichain-wallet/v1"  # in every key's derivation: fixed, whatever the file version
SEED_SIZE = 32
CHAINS = ("receive", "change")
MAX_INDEX = 1_000_000  # far beyond any real use; bounds a hostile file's counters
# Bitcoin Core's -keypool was 100 before 0.16 (DEFAULT_KEYPOOL_SIZE, now 1000); 100 keeps
# the file small and about 100 `wallet address` calls between two unlocks.
KEYPOOL_SIZE = 100
MAX_ENCRYPTED_ADDRESSES = 100_000  # per chain, pool included: the clear list keeps the file under MAX_FILE_SIZE
MAX_FILE_SIZE = 16 * 1024 * 1024
DEFAULT_FILE_NAME = "wallet.json"
_PLAIN_FIELDS = {"format", "version", "network", "seed", "receive", "change", "checksum"}
_ENCRYPTED_FIELDS = {"format", "version", "network", "encryption", "addresses", "receive", "change", "checksum"}


class WalletFileError(Exception):
    """The key file is missing, exposed, damaged or for another network, or its passphrase
    is wrong; ``str()`` says which and what to do about it."""


class PassphraseNeeded(WalletFileError):
    """The wallet is encrypted, the operation needs a key, and no passphrase was given."""


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
        msg = f"{DERIVATION}/{chain}/{index}/{attempt}".encode()
        d = int.from_bytes(hmac.new(seed, msg, hashlib.sha256).digest(), "big")
        if 0 < d < CURVE_N:
            return PrivateKey(d)
        attempt += 1


def peek(path: str) -> bytes | None:
    """The bytes of ``path`` (up to the size limit) without any of load()'s checks, or None
    if it is not a regular file. Never waits: a FIFO or a device is not opened for good."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read(MAX_FILE_SIZE + 1)


class KeyFile:
    """A loaded key file. Create one with :meth:`create`, open one with :meth:`load`.

    An encrypted file opens *locked*: its public addresses are there, and the seed is
    decrypted the first time a key (or an address beyond the pool) is needed, with the
    passphrase from the ``passphrase`` callable given to :meth:`load` (or :meth:`unlock`)."""

    __slots__ = ("path", "network", "_seed", "counts", "_keys", "_sealed", "_pool", "_sealing_key",
                 "_passphrase")

    def __init__(self, path: str, network: str, seed: bytes | None, counts: dict[str, int], *,
                 sealed: dict | None = None, pool: dict[str, list[str]] | None = None) -> None:
        self.path = path
        self.network = network
        self._seed = seed  # None: encrypted and not unlocked yet
        self.counts = dict(counts)
        self._keys: dict[tuple[str, int], PrivateKey] = {}
        self._sealed = sealed  # the sealed seed (encryption.py's JSON object); None: a plaintext file
        self._pool = pool      # encrypted files: every address handed out, plus the pool
        self._sealing_key: SealingKey | None = None
        self._passphrase: Callable[[], str] | None = None

    def __repr__(self) -> str:  # never the seed
        state = ", encrypted" if self.encrypted else ""
        return f"KeyFile({self.path!r}, network={self.network!r}, receive={self.counts['receive']}, change={self.counts['change']}{state})"

    @property
    def params(self) -> chain_params.Params:
        return chain_params.by_name(self.network)

    @property
    def encrypted(self) -> bool:
        return self._sealed is not None

    @property
    def locked(self) -> bool:
        return self._seed is None

    def kdf_cost(self) -> ScryptCost | None:
        s = self._sealed
        return ScryptCost(s["n"], s["r"], s["p"]) if s else None

    # -- keys and addresses -----------------------------------------------------------------

    def key(self, chain: str, index: int) -> PrivateKey:
        k = self._keys.get((chain, index))
        if k is None:
            k = self._keys[(chain, index)] = derive_key(self._unlocked_seed(), chain, index)
        return k

    def address(self, chain: str, index: int) -> str:
        if self._pool is not None and 0 <= index < len(self._pool[chain]):
            return self._pool[chain][index]
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
        if index >= (MAX_ENCRYPTED_ADDRESSES - KEYPOOL_SIZE if self.encrypted else MAX_INDEX):
            raise WalletFileError(f"{self.path} has handed out {index} {chain} addresses, the most it can")
        if self.encrypted and (index >= len(self._pool[chain]) or not self.locked):
            self._refill_pool(extra={chain: 1})  # the pool is used up (asks to unlock), or open anyway
        self.counts[chain] = index + 1
        try:
            self.save()
        except BaseException:
            self.counts[chain] = index
            raise
        return self.address(chain, index)

    # -- encryption -------------------------------------------------------------------------

    def unlock(self, passphrase: str) -> None:
        """Decrypt the seed of an encrypted file (nothing to do if it is open already)."""
        if not self.locked:
            return
        try:
            sealing_key = SealingKey.unlock(self._sealed, passphrase)
        except WrongPassphrase:
            raise WalletFileError(f"wrong passphrase for the wallet {self.path}") from None
        try:
            seed = sealing_key.open(self._sealed, self._associated_data())
        except Tampered:
            raise WalletFileError(
                f"the wallet {self.path} was altered: its encrypted seed or its address list no longer "
                "matches its authentication tag; restore it from your backup") from None
        if len(seed) != SEED_SIZE:
            raise WalletFileError(f"the wallet {self.path} is damaged (the seed is not 32 bytes); "
                                  "restore it from your backup")
        self._seed, self._sealing_key = seed, sealing_key

    def _unlocked_seed(self) -> bytes:
        if self._seed is None:
            if self._passphrase is None:
                raise PassphraseNeeded(f"the wallet {self.path} is encrypted and this needs its key, "
                                       "but no passphrase was given")
            self.unlock(self._passphrase())
        return self._seed

    def _associated_data(self) -> bytes:
        """What the AEAD authenticates besides the seed: the network and the addresses."""
        return json.dumps({"format": FORMAT, "version": VERSION_ENCRYPTED, "network": self.network,
                           "addresses": self._pool}, sort_keys=True, separators=(",", ":")).encode()

    def _refill_pool(self, extra: dict[str, int] | None = None) -> None:
        """Derive addresses until each chain has ``KEYPOOL_SIZE`` unused ones (plus
        ``extra``), and seal the seed again with the new list. Needs the seed."""
        seed = self._unlocked_seed()
        changed = False
        for chain in CHAINS:
            pool = self._pool[chain]
            want = min(self.counts[chain] + (extra or {}).get(chain, 0) + KEYPOOL_SIZE, MAX_ENCRYPTED_ADDRESSES)
            while len(pool) < want:
                pool.append(derive_key(seed, chain, len(pool)).public_key.address(self.params.address_version))
                changed = True
        if changed or self._sealed is None:
            self._sealed = self._sealing_key.seal(seed, self._associated_data())

    def _encrypt_in_memory(self, passphrase: str, cost: ScryptCost | None) -> None:
        """Seal this plaintext wallet's seed under ``passphrase``; nothing is written. The
        result is opened again (a second scrypt) before it is trusted with the only
        copy of the seed."""
        if not passphrase:
            raise WalletFileError("the passphrase is empty; choose one")
        self._sealing_key = SealingKey.new(passphrase, cost or encryption.DEFAULT_COST)
        self._pool = {chain: [] for chain in CHAINS}
        self._refill_pool()
        reopened = self._parse(self.path, self._contents())
        reopened.unlock(passphrase)
        if (reopened._seed, reopened._pool, reopened.counts) != (self._seed, self._pool, self.counts):
            raise WalletFileError("the encrypted wallet did not open again to the same keys; nothing was written")

    def encrypt(self, passphrase: str, *, cost: ScryptCost | None = None) -> None:
        """Encrypt a plaintext key file in place: the new file replaces the old one
        atomically (temporary file, fsync, rename), so a crash leaves either the old
        file or the new one, never half of one nor both side by side."""
        if self.encrypted:
            raise WalletFileError(f"the wallet {self.path} is already encrypted")
        plain = (self._sealed, self._pool, self._sealing_key)
        try:
            self._encrypt_in_memory(passphrase, cost)
            _write_atomically(self.path, self._contents())
        except BaseException:
            self._sealed, self._pool, self._sealing_key = plain
            raise

    # -- the file ---------------------------------------------------------------------------

    def _fields(self) -> dict:
        if self.encrypted:  # never the seed
            return {"format": FORMAT, "version": VERSION_ENCRYPTED, "network": self.network,
                    "encryption": self._sealed, "addresses": self._pool,
                    "receive": self.counts["receive"], "change": self.counts["change"]}
        return {"format": FORMAT, "version": VERSION, "network": self.network, "seed": self._seed.hex(),
                "receive": self.counts["receive"], "change": self.counts["change"]}

    def _contents(self) -> bytes:
        fields = self._fields()
        fields["checksum"] = _checksum(fields)
        return (json.dumps(fields, indent=1) + "\n").encode()

    def save(self) -> None:
        """Replace the file atomically (write a 0600 sibling, fsync, rename)."""
        if not self.encrypted:
            self._refuse_if_encrypted_meanwhile()
        _write_atomically(self.path, self._contents())

    def _refuse_if_encrypted_meanwhile(self) -> None:
        """A plaintext wallet must not write its seed back over a file that another
        command (``wallet encrypt``) has encrypted since this one was loaded."""
        try:
            raw = peek(self.path)
            version = None if raw is None else json.loads(raw).get("version")
        except (OSError, ValueError, AttributeError):
            return
        if version == VERSION_ENCRYPTED:
            raise WalletFileError(f"the wallet {self.path} was encrypted by another command while this one ran; "
                                  "nothing was written: run this command again")

    @classmethod
    def create(cls, path: str, network: str, *, force: bool = False, seed: bytes | None = None,
               passphrase: str | None = None, cost: ScryptCost | None = None) -> tuple["KeyFile", str | None]:
        """Write a new key file with a fresh random seed, encrypted under ``passphrase``
        if one is given (it is sealed in memory first: the seed never reaches the disk
        in clear). Without ``force`` an existing file is refused; with it the old file is
        kept beside the new one as ``<path>.replaced-<unix time>`` (the only copy of its
        keys may be in it) and that name is returned as the second value."""
        chain_params.by_name(network)  # raises ValueError for an unknown network
        if seed is None:
            seed = secrets.token_bytes(SEED_SIZE)
        if len(seed) != SEED_SIZE:
            raise ValueError(f"seed must be {SEED_SIZE} bytes")
        wallet = cls(path, network, seed, {"receive": 0, "change": 0})
        if passphrase is not None:
            wallet._encrypt_in_memory(passphrase, cost)
        contents = wallet._contents()
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
            f.write(contents)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(directory)
        return wallet, kept

    @classmethod
    def load(cls, path: str, *, passphrase: Callable[[], str] | None = None) -> "KeyFile":
        """Open a key file, refusing one that others can read or that is damaged. For an
        encrypted file, ``passphrase()`` is called (once) if and when the seed is needed."""
        try:
            # O_NONBLOCK: opening a FIFO (or a device) for reading must not wait for a
            # writer -- it is refused below as not a regular file. (No effect on files.)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
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
        keyfile = cls._parse(path, raw)
        keyfile._passphrase = passphrase
        return keyfile

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
        version = data.get("version")
        if isinstance(version, bool) or version not in (VERSION, VERSION_ENCRYPTED):
            raise WalletFileError(f"{path} is a version {version!r} key file; "
                                  f"this minichain reads versions {VERSION} and {VERSION_ENCRYPTED}")
        expected = _PLAIN_FIELDS if version == VERSION else _ENCRYPTED_FIELDS
        if set(data) != expected:
            missing, extra = expected - set(data), set(data) - expected
            raise corrupt(", ".join(filter(None, [missing and f"missing {sorted(missing)}",
                                                   extra and f"unexpected {sorted(extra)}"])))
        checksum = data.pop("checksum")
        if not isinstance(checksum, str) or not hmac.compare_digest(checksum, _checksum(data)):
            raise corrupt("checksum mismatch")
        network = data["network"]
        if network not in chain_params.NETWORKS:
            raise corrupt(f"unknown network {network!r}")
        counts = {}
        for chain in CHAINS:
            n = data[chain]
            if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= MAX_INDEX:
                raise corrupt(f"{chain!r} is not a count")
            counts[chain] = n
        if version == VERSION_ENCRYPTED:
            try:
                sealed = encryption.parse_sealed(data["encryption"])
                pool = _parse_addresses(data["addresses"], counts, chain_params.by_name(network).address_version)
            except ValueError as exc:
                raise corrupt(str(exc)) from None
            return cls(path, network, None, counts, sealed=sealed, pool=pool)
        seed_hex = data["seed"]
        if not isinstance(seed_hex, str) or len(seed_hex) != 2 * SEED_SIZE:
            raise corrupt("the seed is not 32 bytes")
        try:
            seed = bytes.fromhex(seed_hex)
        except ValueError:
            raise corrupt("the seed is not hex") from None
        return cls(path, network, seed, counts)


def _parse_addresses(data, counts: dict[str, int], version: int) -> dict[str, list[str]]:
    """The clear address lists of an encrypted file; ValueError(why) if they are not valid."""
    if not isinstance(data, dict) or set(data) != set(CHAINS):
        raise ValueError("its address lists are not receive and change")
    pool = {}
    for chain in CHAINS:
        addresses = data[chain]
        if not isinstance(addresses, list):
            raise ValueError(f"its {chain} addresses are not a list")
        if len(addresses) < counts[chain]:
            raise ValueError(f"its {chain} address list is shorter than its count")
        if len(addresses) > MAX_ENCRYPTED_ADDRESSES:
            raise ValueError(f"its {chain} address list is longer than a key file holds")
        for a in addresses:
            try:
                decode_address(a, version)
            except AddressError:
                raise ValueError(f"its {chain} address list holds {str(a)[:40]!r}, not an address of this network") \
                    from None
        pool[chain] = list(addresses)
    return pool


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
