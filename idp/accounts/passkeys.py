"""Passkeys: WebAuthn credentials of an account and the server side of both ceremonies.

W3C Web Authentication Level 2: registration (§7.1) and authentication
(§7.2), verified by the ``webauthn`` library (py_webauthn); this module keeps
the state around it:

* the relying party id is the issuer's host name and the only allowed origin
  is the issuer's origin, so an assertion made for another site never counts;
* challenges are 32 random bytes, single use (``pop`` from the shared store),
  bound to the browser session (the store key is named only in that
  session's data) and live ``challenge_ttl`` seconds;
* user verification is required in both ceremonies, credentials are
  discoverable (resident keys), attestation is not asked for (``none``): the
  authenticator's name comes from its AAGUID where we know it;
* the signature counter is moved forward with one atomic ``UPDATE … WHERE
  sign_count < new``; a counter that does not move forward is the clone signal
  (§6.1.1) and is refused or flagged, as configured.

Passkeys are rows of ``passkeys`` (``account_id`` cascades on delete, so
erasing an account erases its passkeys).
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app, session
from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.core.storage import Account, db, utcnow

log = logging.getLogger(__name__)

CLONE_POLICIES = ("refuse", "flag")
NAME_MAX = 64
# Display names of common passkey providers by AAGUID
# (the community list passkeydeveloper/passkey-authenticator-aaguids).
AAGUID_NAMES = {
    "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4": "Google Password Manager",
    "adce0002-35bc-c60a-648b-0b25f1f05503": "Chrome on Mac",
    "b5397666-4885-aa6b-cebf-e52262a439a2": "Chromium Browser",
    "fbfc3007-154e-4ecc-8c0b-6e020557d7bd": "iCloud Keychain",
    "dd4ec289-e01d-41c9-bb89-70fa845d4bf2": "iCloud Keychain (Managed)",
    "08987058-cadc-4b81-b6e1-30de50dcbe96": "Windows Hello",
    "9ddd1817-af5a-4672-a2b9-3e3dd95000a9": "Windows Hello",
    "6028b017-b1d4-4c02-b4b3-afcdafc96bb2": "Windows Hello",
    "771b48fd-d3d4-4f74-9232-fc157ab0507a": "Edge on Mac",
    "d3452668-01fd-4c12-926c-83a4204853aa": "Microsoft Password Manager",
    "bada5566-a7aa-401f-bd96-45619a55120d": "1Password",
    "d548826e-79b4-db40-a3d8-11116f7e8349": "Bitwarden",
    "531126d6-e717-415c-9320-3d9aa6981239": "Dashlane",
    "b84e4048-15dc-4dd0-8640-f4f60813c8af": "NordPass",
    "0ea242b4-43c4-4a1b-8b17-dd6d0b6baec6": "Keeper",
    "f3809540-7f14-49c1-a8b3-8f813b225541": "Enpass",
}


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PasskeySettings:
    """The ``[passkeys]`` table (every key optional). The login method's level is ``[methods.passkey]``."""

    rp_name: str | None = None  # the service name when not set
    challenge_ttl: int = 120
    clone_policy: str = "refuse"
    offer_after_login: bool = True
    max_per_account: int = 10

    @classmethod
    def from_table(cls, t) -> PasskeySettings:
        d = cls()
        out = cls(
            rp_name=t.str("rp_name", None),
            challenge_ttl=t.int("challenge_ttl", d.challenge_ttl, min=30, max=600),
            clone_policy=t.str("clone_policy", d.clone_policy, choices=CLONE_POLICIES),
            offer_after_login=t.bool("offer_after_login", d.offer_after_login),
            max_per_account=t.int("max_per_account", d.max_per_account, min=1, max=50),
        )
        t.finish()
        return out


def settings() -> PasskeySettings:
    return current_app.extensions["idp.settings"].sections.get("passkeys") or PasskeySettings()


def rp_id() -> str:
    """The relying party id: the issuer's host name (never the request's Host header)."""
    return urlsplit(current_app.extensions["idp.settings"].issuer).hostname or ""


def expected_origin() -> str:
    parts = urlsplit(current_app.extensions["idp.settings"].issuer)
    return f"{parts.scheme}://{parts.netloc}"


# ---------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------


class Passkey(db.Model):
    __tablename__ = "passkeys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)  # base64url, ≤ 1023 bytes
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    user_handle: Mapped[str] = mapped_column(String(128))  # base64url
    aaguid: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)
    last_used_at: Mapped[int | None] = mapped_column(BigInteger)
    clone_warning_at: Mapped[int | None] = mapped_column(BigInteger)


class PasskeyOffer(db.Model):
    """When the "next time, use a passkey" page was shown to an account: it is shown once."""

    __tablename__ = "passkey_offers"
    account_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    offered_at: Mapped[int] = mapped_column(BigInteger, default=utcnow)


def list_for(account: Account) -> list[Passkey]:
    return list(
        db.session.scalars(
            select(Passkey).where(Passkey.account_id == account.id).order_by(Passkey.created_at, Passkey.id)
        )
    )


def get_for(account: Account, passkey_id: int) -> Passkey | None:
    row = db.session.get(Passkey, passkey_id)
    return row if row is not None and row.account_id == account.id else None


def remove(row: Passkey) -> None:
    db.session.delete(row)
    db.session.commit()


def rename(row: Passkey, name: str) -> None:
    row.name = clean_name(name) or row.name
    db.session.commit()


def clean_name(name: str | None) -> str:
    return " ".join((name or "").split())[:NAME_MAX]


def name_for(aaguid: str) -> str | None:
    return AAGUID_NAMES.get(aaguid)


def should_offer(account: Account) -> bool:
    """Offer a passkey after this login? Once per account, and only to accounts without one."""
    if not settings().offer_after_login or not _method_enabled():
        return False
    if db.session.get(PasskeyOffer, account.id) is not None:
        return False
    return db.session.scalar(select(Passkey.id).where(Passkey.account_id == account.id).limit(1)) is None


def mark_offered(account: Account) -> None:
    if db.session.get(PasskeyOffer, account.id) is None:
        db.session.add(PasskeyOffer(account_id=account.id, offered_at=utcnow()))
        try:
            db.session.commit()
        except IntegrityError:  # shown in two tabs at once: once is recorded
            db.session.rollback()


def _method_enabled() -> bool:
    method = current_app.extensions["idp.settings"].methods.get("passkey")
    return bool(method and method.enabled)


# ---------------------------------------------------------------------------
# Challenges: single use, bound to the session, short-lived, in the shared store
# ---------------------------------------------------------------------------


class PasskeyError(Exception):
    """A ceremony that cannot go on; ``code`` names why (never shown as such to the person)."""

    def __init__(self, code: str, account_id: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.account_id = account_id


def _new_challenge(purpose: str, **state) -> bytes:
    challenge = secrets.token_bytes(32)
    handle = secrets.token_urlsafe(24)
    value = json.dumps({**state, "challenge": bytes_to_base64url(challenge)}).encode()
    current_app.extensions["idp.kv"].set(f"passkey:{purpose}:{handle}", value, settings().challenge_ttl)
    old = session.get(f"passkey_{purpose}")
    if old:
        current_app.extensions["idp.kv"].delete(f"passkey:{purpose}:{old}")
    session[f"passkey_{purpose}"] = handle
    return challenge


def _take_challenge(purpose: str) -> dict:
    handle = session.pop(f"passkey_{purpose}", None)
    raw = current_app.extensions["idp.kv"].pop(f"passkey:{purpose}:{handle}") if handle else None
    if raw is None:
        raise PasskeyError("expired")
    state = json.loads(raw)
    state["challenge"] = base64url_to_bytes(state["challenge"])
    return state


# ---------------------------------------------------------------------------
# Registration (§7.1)
# ---------------------------------------------------------------------------


def registration_options(account: Account) -> str:
    """The JSON for ``navigator.credentials.create()``; the challenge is kept for :func:`register`."""
    existing = list_for(account)
    s = settings()
    if len(existing) >= s.max_per_account:
        raise PasskeyError("too_many")
    service = current_app.extensions["idp.settings"].service_name
    # user.id: random, the same for every passkey of the account (never the username or sub).
    user_handle = existing[0].user_handle if existing else bytes_to_base64url(secrets.token_bytes(32))
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=s.rp_name or service,
        user_id=base64url_to_bytes(user_handle),
        user_name=account.username or account.email or account.sub,
        user_display_name=account.display_name,
        challenge=_new_challenge("register", account=account.id, user_handle=user_handle),
        timeout=s.challenge_ttl * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            require_resident_key=True,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id)) for p in existing
        ],
    )
    return options_to_json(options)


def register(account: Account, credential: dict | str, name: str | None = None) -> Passkey:
    """Verify the authenticator's answer to :func:`registration_options` and store the passkey."""
    state = _take_challenge("register")
    if state.get("account") != account.id:
        raise PasskeyError("expired")
    if len(list_for(account)) >= settings().max_per_account:
        raise PasskeyError("too_many")
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=state["challenge"],
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        log.info("passkey registration refused: %s", type(exc).__name__)
        raise PasskeyError("invalid") from None
    row = Passkey(
        account_id=account.id,
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        user_handle=state["user_handle"],
        aaguid=verified.aaguid,
        name=clean_name(name) or name_for(verified.aaguid) or "Passkey",
        backed_up=bool(verified.credential_backed_up),
        created_at=utcnow(),
    )
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise PasskeyError("duplicate") from None
    return row


# ---------------------------------------------------------------------------
# Authentication (§7.2)
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PasskeyLogin:
    account: Account
    passkey: Passkey
    amr: tuple[str, ...]
    clone_warning: bool


def authentication_options() -> str:
    """The JSON for ``navigator.credentials.get()``: no allow list (discoverable credentials)."""
    s = settings()
    options = generate_authentication_options(
        rp_id=rp_id(),
        challenge=_new_challenge("login"),
        timeout=s.challenge_ttl * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return options_to_json(options)


def authenticate(credential: dict | str) -> PasskeyLogin:
    """Verify an assertion against the challenge of this session; the account it proves."""
    state = _take_challenge("login")
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, ValueError, KeyError, TypeError):
        raise PasskeyError("invalid") from None
    row = db.session.scalar(select(Passkey).where(Passkey.credential_id == bytes_to_base64url(parsed.raw_id)))
    account = db.session.get(Account, row.account_id) if row is not None else None
    if row is None or account is None or account.status != "active":
        raise PasskeyError("unknown")
    handle = parsed.response.user_handle
    if handle and bytes_to_base64url(handle) != row.user_handle:
        raise PasskeyError("invalid")
    try:
        verified = verify_authentication_response(
            credential=parsed,
            expected_challenge=state["challenge"],
            expected_rp_id=rp_id(),
            expected_origin=expected_origin(),
            credential_public_key=row.public_key,
            # The counter is checked below, atomically and by policy (refuse or flag).
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        log.info("passkey assertion refused: %s", exc)
        raise PasskeyError("invalid") from None
    clone = not _advance_counter(row, verified.new_sign_count)
    now = utcnow()
    if clone:
        row.clone_warning_at = now
        if settings().clone_policy == "refuse":
            db.session.commit()
            raise PasskeyError("cloned", account_id=row.account_id)
    row.last_used_at = now
    row.backed_up = bool(verified.credential_backed_up)
    db.session.commit()
    synced = verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE or row.backed_up
    # RFC 8176: a key in a synced store is a software key; user verification + possession is mfa.
    amr = ("swk" if synced else "hwk", "user", "mfa")
    return PasskeyLogin(account=account, passkey=row, amr=amr, clone_warning=clone)


def _advance_counter(row: Passkey, new: int) -> bool:
    """Move the stored counter to ``new``; False when it does not go forward (a clone signal).

    Authenticators without a counter (synced passkeys) always send 0: nothing to compare.
    """
    if new == 0 and row.sign_count == 0:
        return True
    result = db.session.execute(
        update(Passkey)
        .where(Passkey.id == row.id, Passkey.sign_count < new)
        .values(sign_count=new)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        row.sign_count = new
        return True
    return False
