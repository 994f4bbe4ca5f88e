"""Token signing keys: generation, encryption at rest, rotation and the JWKS.

ID tokens, JWT access tokens (RFC 9068) and logout tokens are signed with the
active key (RS256 by default; PS256 and ES256 selectable). Private keys are
stored PKCS#8-encrypted with the keys passphrase. ``idp keys rotate`` adds a
new key and switches signing to it; the old public key stays in the JWKS
until every token it signed has expired (RFC 7517, OpenID Connect Core 10.1.1).

Loading a PEM key costs tens of milliseconds, so each process loads the keys
once and re-reads the table only when a rotation happened (checked at most
every ``reload_interval`` seconds); the JWKS is served from pre-serialised bytes.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from sqlalchemy import func, select

from idp.core.storage import SigningKey, db

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActiveKey:
    kid: str
    alg: str
    key: RSAKey | ECKey


def _generate(alg: str):
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _import(private_key, kid: str, alg: str):
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    params = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "ES256":
        return ECKey.import_key(pem, params)
    return RSAKey.import_key(pem, params)


class KeyRing:
    """The provider's signing keys as one process sees them."""

    def __init__(
        self, passphrase: str, algorithm: str, lifetime: int, issuer: str = "", reload_interval: float = 30.0
    ) -> None:
        self._passphrase = passphrase.encode()
        self.issuer = issuer
        self.algorithm = algorithm
        self.lifetime = lifetime  # longest lifetime of anything we sign
        self.reload_interval = reload_interval
        self._lock = threading.Lock()
        self._active: ActiveKey | None = None
        self._verify: dict[str, RSAKey | ECKey] = {}
        self._jwks_bytes = b'{"keys":[]}'
        self._fingerprint: tuple | None = None
        self._checked = 0.0

    # -- database ---------------------------------------------------------
    def create_key(self, now: int | None = None) -> str:
        """Generate a key, make it the active one, retire the previous one."""
        now = now or int(time.time())
        alg = self.algorithm
        private = _generate(alg)
        kid = f"{time.strftime('%Y%m%d', time.gmtime(now))}-{secrets.token_hex(4)}"
        enc = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._passphrase),
        ).decode()
        public = _import(private, kid, alg).as_dict(private=False)
        for old in db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
            old.retired_at = now
            old.drop_after = now + self.lifetime + 300
        db.session.add(SigningKey(kid=kid, alg=alg, private_pem=enc, public_jwk=public, created_at=now))
        db.session.commit()
        log.info("signing key created kid=%s alg=%s", kid, alg)
        self._checked = 0.0
        return kid

    def ensure_key(self) -> None:
        """A signing key of the configured algorithm: created, or rotated in when the setting changed.

        Discovery advertises the configured algorithm, so signing on with a key
        of another one would break relying parties that trust the document.
        """
        active = db.session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))).all()
        if not active or any(row.alg != self.algorithm for row in active):
            self.create_key()

    def prune(self, now: int | None = None) -> int:
        now = now or int(time.time())
        rows = db.session.scalars(select(SigningKey).where(SigningKey.drop_after < now)).all()
        for row in rows:
            db.session.delete(row)
        db.session.commit()
        self._checked = 0.0  # the JWKS of this process drops them at once
        return len(rows)

    def _load(self, now: float) -> None:
        fingerprint = db.session.execute(
            select(
                func.count(SigningKey.kid), func.max(SigningKey.created_at), func.min(SigningKey.drop_after)
            )
        ).one()
        if fingerprint == self._fingerprint and self._active is not None:
            return
        rows = db.session.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()
        active = None
        verify = {}
        public = []
        for row in rows:
            if row.drop_after is not None and row.drop_after < now:
                continue
            public.append(row.public_jwk)
            verify[row.kid] = (RSAKey if row.alg != "ES256" else ECKey).import_key(row.public_jwk)
            if row.retired_at is None:
                active = row
        if active is None:
            raise RuntimeError("no active signing key: run `idp keys rotate`")
        if self._active is None or self._active.kid != active.kid:
            private = serialization.load_pem_private_key(active.private_pem.encode(), self._passphrase)
            self._active = ActiveKey(active.kid, active.alg, _import(private, active.kid, active.alg))
        self._verify = verify
        self._jwks_bytes = json.dumps({"keys": public}, separators=(",", ":")).encode()
        self._fingerprint = fingerprint

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self._active is not None and now - self._checked < self.reload_interval:
            return
        with self._lock:
            if not force and self._active is not None and now - self._checked < self.reload_interval:
                return
            self._load(time.time())
            self._checked = now

    # -- use ----------------------------------------------------------------
    @property
    def active(self) -> ActiveKey:
        self.refresh()
        return self._active

    def jwks_bytes(self) -> bytes:
        self.refresh()
        return self._jwks_bytes

    def verification_keys(self) -> KeySet:
        self.refresh()
        return KeySet(list(self._verify.values()))

    def sign(self, claims: dict, typ: str = "JWT") -> str:
        key = self.active
        header = {"alg": key.alg, "kid": key.kid, "typ": typ}
        return jwt.encode(header, claims, key.key, algorithms=[key.alg])

    def verify(self, token: str, typ: str | None = None) -> dict:
        """Verify the signature of a JWT we issued (not its lifetime); raises on any failure.

        The algorithm must be the one of the key named by ``kid`` (RFC 8725
        section 3.1); ``jku``, ``x5u`` and embedded ``jwk`` headers are ignored.
        Checks ``typ`` when given, so token types are not interchangeable.
        """

        header = jws.extract_compact(token.encode()).protected
        self.refresh()
        if header.get("kid") not in self._verify:
            self.refresh(force=True)  # a rotation in another process
        key = self._verify.get(header.get("kid"))
        if key is None:
            raise ValueError("unknown key id")
        alg = key.get("alg") or ("ES256" if isinstance(key, ECKey) else "RS256")
        result = jwt.decode(token, key, algorithms=[alg])
        if typ is not None and str(result.header.get("typ", "")).lower() != typ.lower():
            raise ValueError(f"token type {result.header.get('typ')!r} is not {typ!r}")
        claims = dict(result.claims)
        if self.issuer and claims.get("iss") != self.issuer:
            raise ValueError("token issued by someone else")
        return claims

    def verify_hint(self, token: str) -> dict:
        """An ID token we issued, accepted after its expiry (``id_token_hint``)."""
        return self.verify(token, typ="JWT")


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.keys"] = KeyRing(
        settings.keys_passphrase,
        settings.signing_algorithm,
        lifetime=max(settings.id_token_ttl, settings.access_token_ttl),
        issuer=settings.issuer,
        reload_interval=settings.keys_reload_interval,
    )
