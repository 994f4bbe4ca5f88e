"""Lazy migration: ask the old system, once per person, whether a username and password are right.

For an old system that cannot export its password hashes. When a username
typed at the password login is unknown here and ``[legacy]`` is enabled, the
provider sends the typed username and password to the old system's HTTPS
endpoint; if the old system says yes, the account is created here with an
Argon2id hash of that password and the attributes the old system returned,
and the old system is never asked about that username again (the account
now exists here). See ``docs/migration.md`` for the protocol.

* **No enumeration.** Every answer that involved the old system takes at
  least ``response_time_floor_ms`` (its own timing differences are hidden below that)
  and ends with one Argon2 computation, whether the old system knew the
  name or not; its "no" never says why, so unknown names and wrong
  passwords answer alike. The caller counts failures against the same
  lockout counter as any password failure.
* **Failures are honest.** A timeout, a refused connection, a 5xx or a
  malformed answer raise :class:`LegacyUnavailable` (the page says so; no
  account is created). After ``circuit_breaker.failures`` such failures in a
  row, the old system is not called for ``circuit_breaker.open_for`` seconds.
  The breaker lives in the shared store, so every worker sees it.
* **The second factor is asked as for any account**: only a mobile number the
  old system returns as verified counts as verified; otherwise the account
  goes through "add and confirm your mobile" (:mod:`idp.login.actions`).
* The old system is authenticated by a bearer secret (``env:``/``file:``)
  and/or mutual TLS; its certificate is checked (``ca_file`` to pin a private CA).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy.exc import IntegrityError

from idp.accounts import importer
from idp.accounts.origins import LAZY, AccountOrigin
from idp.accounts.users import find_by_username
from idp.core import audit
from idp.core.storage import Account, db, utcnow

log = logging.getLogger(__name__)

LOOPBACK = ("127.0.0.1", "localhost", "::1")
ATTRIBUTES = tuple(f for f in importer.FIELDS if f not in ("username", "password_hash"))
BREAKER_FAILURES = "legacy:breaker:failures"
BREAKER_OPEN = "legacy:breaker:open"


class LegacyUnavailable(Exception):
    """The old system could not give an answer (down, slow, broken, or the breaker is open)."""


@dataclass(frozen=True)
class LegacySettings:
    """The ``[legacy]`` table: the old system's password check endpoint."""

    enabled: bool = False
    url: str | None = None
    bearer_token: str | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    ca_file: Path | None = None
    timeout: float = 3.0
    response_time_floor_ms: int = 1000
    breaker_failures: int = 5
    breaker_open_for: int = 60

    @classmethod
    def from_table(cls, t) -> LegacySettings:
        d = cls()
        enabled = t.bool("enabled", d.enabled)
        url = t.str("url", None)
        bearer = t.secret("bearer_token", None)
        cert = t.path_value("client_cert", None)
        key = t.path_value("client_key", None)
        ca_file = t.path_value("ca_file", None)
        timeout = t.float("timeout", d.timeout, min=0.2, max=30)
        floor = t.int("response_time_floor_ms", d.response_time_floor_ms, min=0, max=30000)
        b = t.table("circuit_breaker")
        failures = b.int("failures", d.breaker_failures, min=1, max=1000)
        open_for = b.int("open_for", d.breaker_open_for, min=1, max=86400)
        b.finish()
        if enabled:
            parts = urlsplit(url or "")
            if not url:
                t.error("url", "is required when enabled")
            elif not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
                t.error("url", f"{url!r} must be an https URL (http only to 127.0.0.1 for a local test)")
            if not bearer and not cert:
                t.error(
                    "bearer_token", "the old system must authenticate this provider: set it or client_cert"
                )
        if bool(cert) != bool(key):
            t.error("client_key", "client_cert and client_key go together")
        t.finish()
        return cls(
            enabled=bool(enabled),
            url=url,
            bearer_token=bearer,
            client_cert=cert,
            client_key=key,
            ca_file=ca_file,
            timeout=timeout,
            response_time_floor_ms=floor,
            breaker_failures=failures,
            breaker_open_for=open_for,
        )


def settings() -> LegacySettings:
    return current_app.extensions["idp.settings"].sections.get("legacy") or LegacySettings()


def enabled() -> bool:
    return settings().enabled


# ---------------------------------------------------------------------------
# The call
# ---------------------------------------------------------------------------


def ask(s: LegacySettings, username: str, password: str) -> dict | None:
    """The old system's attributes when it accepts the pair; None when it refuses.

    Raises :class:`LegacyUnavailable` when there is no usable answer.
    """
    kv = current_app.extensions["idp.kv"]
    if kv.get(BREAKER_OPEN) is not None:
        raise LegacyUnavailable("circuit breaker open")
    headers = {"Accept": "application/json"}
    if s.bearer_token:
        headers["Authorization"] = f"Bearer {s.bearer_token}"
    try:
        response = requests.post(
            s.url,
            json={"username": username, "password": password},
            headers=headers,
            timeout=s.timeout,
            cert=(str(s.client_cert), str(s.client_key)) if s.client_cert else None,
            verify=str(s.ca_file) if s.ca_file else True,
            allow_redirects=False,
        )
        body = response.json() if response.status_code == 200 else None
        valid = body.get("valid") if isinstance(body, dict) else None
        if not isinstance(valid, bool):
            raise ValueError(f"status {response.status_code}, no boolean 'valid'")
    except (requests.RequestException, ValueError) as exc:
        _failed(s, kv, type(exc).__name__)
        raise LegacyUnavailable(type(exc).__name__) from None
    kv.delete(BREAKER_FAILURES)
    if not valid:
        return None
    account = body.get("account")
    return account if isinstance(account, dict) else {}


def _failed(s: LegacySettings, kv, reason: str) -> None:
    # Never the exception text: requests may quote the URL, and nothing here may echo a password.
    log.warning("legacy password source unavailable: %s", reason)
    if kv.incr(BREAKER_FAILURES, s.breaker_open_for) >= s.breaker_failures:
        kv.set(BREAKER_OPEN, b"1", s.breaker_open_for)
        kv.delete(BREAKER_FAILURES)
        log.warning("legacy password source: circuit breaker open for %d s", s.breaker_open_for)
        audit.record("legacy_source_breaker", "failure", seconds=s.breaker_open_for)


# ---------------------------------------------------------------------------
# The login side
# ---------------------------------------------------------------------------


def authenticate(username: str, password: str) -> Account | None:
    """For a username unknown here: the new account if the old system accepts the password.

    Takes at least ``response_time_floor_ms`` and one Argon2 computation whatever the
    outcome; raises :class:`LegacyUnavailable` (after the same wait) when the
    old system cannot answer.
    """
    s = settings()
    passwords = current_app.extensions["idp.passwords"]
    started = time.monotonic()
    try:
        attributes = ask(s, username.strip(), password) if _plausible(username) else None
    finally:
        time.sleep(max(0.0, s.response_time_floor_ms / 1000 - (time.monotonic() - started)))
    if attributes is None:
        passwords.verify(None, password)  # the same Argon2 work as a wrong password
        return None
    return _create(username.strip(), passwords.hash(password), attributes)


def _plausible(username: str) -> bool:
    name = (username or "").strip()
    return 3 <= len(name) <= 64 and not any(c.isspace() for c in name)


def _create(username: str, password_hash: str, attributes: dict) -> Account | None:
    """The account for what the old system returned. Attributes that fail the import's checks
    are left out and named in the log (never their values)."""
    record = {k: v for k, v in attributes.items() if k in ATTRIBUTES}
    row, refused = _checked(username, password_hash, record)
    if refused:
        log.warning("legacy account attributes refused: %s", ", ".join(sorted(refused)))
        row, _refused = _checked(
            username, password_hash, {k: v for k, v in record.items() if k not in refused}
        )
    if row is None:
        return None
    values = {**row.values, "customer_id": importer.customer_id(row.customer_number)}
    account = Account(sub=secrets.token_hex(16), username_norm=row.norm, status="active", **values)
    try:
        db.session.add(account)
        db.session.flush()
        db.session.add(AccountOrigin(account_id=account.id, source=LAZY, first_login_at=utcnow()))
        audit.record("account_migrated", account_id=account.id, commit=False, source=LAZY)
        db.session.commit()
    except IntegrityError:
        # The same person's other login created it a moment ago: the old system accepted both.
        db.session.rollback()
        return find_by_username(username)
    return account


def _checked(username: str, password_hash: str, record: dict) -> tuple[importer.Row | None, set[str]]:
    problems = importer.Problems()
    obj = {**record, "username": username, "password_hash": password_hash}
    row = importer.check_record(0, obj, problems, allow_weak=False, region=_region())
    return row, {message.split(":", 1)[0] for _line, message in problems.items}


def _region() -> str:
    otp = current_app.extensions["idp.settings"].sections.get("otp")
    return getattr(otp, "default_region", "BE")
