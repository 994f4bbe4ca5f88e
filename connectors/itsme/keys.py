"""Our relying-party keys towards itsme: one RSA ``sig`` and one RSA ``enc`` key.

itsme fetches our JWKS from a registered URL (RSA keys only, each with a
``kid`` and a ``use``), verifies our ``private_key_jwt`` client assertions
with the ``sig`` key (RFC 7523 section 2.2, OIDC Core section 9) and
encrypts ID tokens and userinfo responses to the ``enc`` key (RFC 7516).

Rotation follows itsme's guide ("Our keys" in ``shared/reference/itsme.md``):

* signing: add the new kid, switch, then remove the old. The new key is
  published at once but signs only after :data:`SIG_PUBLISH_DELAY` (itsme
  caches our JWKS for up to 24 hours, so it may not know the new key before);
  until then the previous key keeps signing, and its public key stays in the
  JWKS for :data:`SIG_RETENTION` after the switch, then it is dropped;
* encryption: the new key is published alone; the previous private key is
  kept for :data:`ENC_GRACE` because itsme caches our JWKS for up to 24 hours
  and may still encrypt to it. The decryption key is chosen by the JWE ``kid``.

On disk (``keys_dir``): one PKCS#8 PEM per key, encrypted with the passphrase
(``BestAvailableEncryption``), and ``keys.json`` listing kids, uses and dates.
Files are written to a temporary name then ``os.replace``-d; creation and
rotation hold an exclusive ``flock`` so two processes sharing the folder
agree on one key set.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from joserfc.jwk import RSAKey

ENC_GRACE = 24 * 3600  # itsme caches our JWKS between 30 minutes and 24 hours
SIG_RETENTION = 24 * 3600
SIG_PUBLISH_DELAY = 24 * 3600  # a new signing key is published this long before it signs
KEY_SIZE = 3072
MANIFEST = "keys.json"
_LOCK = ".lock"


class RPKeyError(Exception):
    """The key folder cannot be read (wrong passphrase, damaged files)."""


@dataclass(frozen=True)
class _Entry:
    kid: str
    use: str  # "sig" | "enc"
    created_at: float
    retired_at: float | None = None  # a signing key may be retired in the future (it signs until then)
    active_from: float | None = None  # a new signing key signs only from then on (None: at once)

    def as_json(self) -> dict:
        return {
            "kid": self.kid,
            "use": self.use,
            "created_at": self.created_at,
            "retired_at": self.retired_at,
            "active_from": self.active_from,
        }

    def signs_at(self, now: float) -> bool:
        started = self.active_from if self.active_from is not None else self.created_at
        return started <= now and (self.retired_at is None or self.retired_at > now)


class RPKeys:
    """The RP key set stored in ``keys_dir``; see the module docstring."""

    key_size = KEY_SIZE

    def __init__(
        self,
        keys_dir: Path,
        passphrase: str,
        clock: Callable[[], float] = time.time,
        sig_publish_delay: float = SIG_PUBLISH_DELAY,
    ) -> None:
        if not passphrase:
            raise RPKeyError("a passphrase is required to protect the private keys")
        self.keys_dir = Path(keys_dir)
        self._passphrase = passphrase
        self._clock = clock
        self.sig_publish_delay = sig_publish_delay
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []
        self._keys: dict[str, RSAKey] = {}
        self._stamp: tuple[int, int] | None = None
        self._jwks_cache: tuple[tuple[str, ...], bytes] | None = None

    def __repr__(self) -> str:
        return f"RPKeys({str(self.keys_dir)!r})"

    # -- loading -----------------------------------------------------------
    @classmethod
    def load_or_create(
        cls,
        keys_dir: Path,
        passphrase: str,
        clock: Callable[[], float] = time.time,
        sig_publish_delay: float = SIG_PUBLISH_DELAY,
    ) -> RPKeys:
        """Open the key folder, creating the first ``sig`` and ``enc`` keys if it is empty."""
        keys = cls(keys_dir, passphrase, clock, sig_publish_delay)
        keys.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not (keys.keys_dir / MANIFEST).exists():
            with keys._exclusive():
                if not (keys.keys_dir / MANIFEST).exists():  # another process may have won the race
                    now = clock()
                    keys._write([keys._new_key("sig", now), keys._new_key("enc", now)])
        keys.reload()
        return keys

    def reload(self) -> None:
        """Read ``keys.json`` and the private keys again (after a rotation by another process)."""
        path = self.keys_dir / MANIFEST
        try:
            stat = path.stat()
            manifest = json.loads(path.read_text(encoding="utf-8"))
            entries = [_Entry(**e) for e in manifest["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RPKeyError(f"cannot read {path}: {exc}") from exc
        loaded = {}
        for entry in entries:
            loaded[entry.kid] = self._keys[entry.kid] if entry.kid in self._keys else self._read_key(entry)
        with self._lock:
            self._entries = entries
            self._keys = loaded
            self._stamp = (stat.st_mtime_ns, stat.st_ino)

    def reload_if_changed(self) -> bool:
        """Reload when ``keys.json`` changed on disk; one ``stat`` otherwise."""
        try:
            stat = (self.keys_dir / MANIFEST).stat()
        except OSError:
            return False
        if (stat.st_mtime_ns, stat.st_ino) == self._stamp:
            return False
        self.reload()
        return True

    def _read_key(self, entry: _Entry) -> RSAKey:
        pem_path = self.keys_dir / f"{entry.kid}.pem"
        try:
            pem = pem_path.read_bytes()
            return RSAKey.import_key(pem, _parameters(entry.kid, entry.use), password=self._passphrase)
        except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
            # ValueError covers a wrong passphrase; never echo key material
            raise RPKeyError(f"cannot load private key {pem_path.name} (wrong passphrase?)") from exc

    # -- rotation ----------------------------------------------------------
    def rotate(self, now: float | None = None, *, immediate: bool = False) -> dict:
        """Create a new ``sig`` and a new ``enc`` key; retire the current ones.

        The new ``enc`` key replaces the old one at once (the old one still
        decrypts for :data:`ENC_GRACE`); the new ``sig`` key is published now
        and takes over signing after ``sig_publish_delay`` — or at once with
        ``immediate=True``, for a key that may have leaked (itsme then refuses
        our assertions until it fetches the JWKS again).

        Returns ``{"sig": new_kid, "enc": new_kid, "retired": [...], "removed": [...]}``.
        Keys whose grace period is over are deleted from the folder.
        """
        now = self._clock() if now is None else now
        with self._exclusive():
            self.reload()  # rotate from what is on disk, not from a stale view
            retired, removed, kept = [], [], []
            switch = now if immediate else now + self.sig_publish_delay
            for entry in self._entries:
                if entry.retired_at is None:
                    until = switch if entry.use == "sig" else now
                    kept.append(_Entry(entry.kid, entry.use, entry.created_at, until, entry.active_from))
                    retired.append(entry.kid)
                elif now - entry.retired_at < _grace(entry.use):
                    kept.append(entry)
                else:
                    removed.append(entry.kid)
            new = [self._new_key("sig", now, active_from=switch), self._new_key("enc", now)]
            self._write(kept + new)
            for kid in removed:
                with contextlib.suppress(FileNotFoundError):
                    (self.keys_dir / f"{kid}.pem").unlink()
            self.reload()
        return {"sig": new[0].kid, "enc": new[1].kid, "retired": retired, "removed": removed}

    def _new_key(self, use: str, now: float, active_from: float | None = None) -> _Entry:
        key = RSAKey.generate_key(self.key_size, _parameters(None, use))
        kid = f"{use}-{key.thumbprint()[:22]}"
        pem = key.as_pem(private=True, password=self._passphrase)
        _atomic_write(self.keys_dir / f"{kid}.pem", pem)
        return _Entry(kid, use, now, active_from=active_from)

    def _write(self, entries: list[_Entry]) -> None:
        manifest = {"version": 1, "keys": [e.as_json() for e in entries]}
        _atomic_write(self.keys_dir / MANIFEST, json.dumps(manifest, indent=2).encode())

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        fd = os.open(self.keys_dir / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- use ---------------------------------------------------------------
    def _current(self, use: str) -> _Entry:
        if use == "sig":
            now = self._clock()
            current = [e for e in self._entries if e.use == "sig" and e.signs_at(now)]
        else:
            current = [e for e in self._entries if e.use == use and e.retired_at is None]
        if not current:
            raise RPKeyError(f"no current {use} key in {self.keys_dir}")
        return max(current, key=lambda e: e.created_at)

    def signing_key(self) -> RSAKey:
        """The private key for ``private_key_jwt`` client assertions (its ``kid`` goes in the header)."""
        self.reload_if_changed()
        with self._lock:
            return self._keys[self._current("sig").kid]

    def decryption_key(self, kid: str | None) -> RSAKey | None:
        """Our private ``enc`` key named by a JWE ``kid``, if it is current or within its grace.

        Without a ``kid`` the current key is returned. A ``kid`` we do not know
        triggers one check for a rotation done by another process.
        """
        now = self._clock()
        for attempt in range(2):
            with self._lock:
                if kid is None:
                    return self._keys[self._current("enc").kid]
                for entry in self._entries:
                    if entry.kid == kid and entry.use == "enc":
                        if entry.retired_at is None or now - entry.retired_at < ENC_GRACE:
                            return self._keys[kid]
                        return None
            if attempt == 0 and not self.reload_if_changed():
                break
        return None

    def public_jwks_bytes(self) -> bytes:
        """The public JWKS to publish: current ``sig`` and ``enc`` keys plus recently retired ``sig`` keys."""
        self.reload_if_changed()
        now = self._clock()
        with self._lock:
            published = tuple(
                e.kid
                for e in sorted(
                    self._entries, key=lambda e: (e.use != "sig", e.retired_at is not None, -e.created_at)
                )
                if e.retired_at is None or (e.use == "sig" and now - e.retired_at < SIG_RETENTION)
            )
            if self._jwks_cache and self._jwks_cache[0] == published:
                return self._jwks_cache[1]
            keys = [self._public_dict(self._keys[kid]) for kid in published]
            data = json.dumps({"keys": keys}, separators=(",", ":")).encode()
            self._jwks_cache = (published, data)
            return data

    @staticmethod
    def _public_dict(key: RSAKey) -> dict:
        d = key.as_dict(private=False)
        return {k: d[k] for k in ("kty", "kid", "use", "alg", "n", "e") if k in d}


def _parameters(kid: str | None, use: str) -> dict:
    # "alg" only on the sig key: itsme may encrypt with RSA-OAEP-256 or RSA-OAEP
    params = {"use": use, "alg": "RS256"} if use == "sig" else {"use": use}
    return {"kid": kid, **params} if kid else params


def _grace(use: str) -> float:
    return ENC_GRACE if use == "enc" else SIG_RETENTION


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
