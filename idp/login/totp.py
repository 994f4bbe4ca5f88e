"""The authenticator app: time-based one-time passwords (RFC 6238, NIST SP 800-63B §5.1.4).

An alternative second factor for people whose SMS does not arrive (abroad,
roaming). The secret is shown once, as a QR code and as text, while the
person enrols; it is stored encrypted with a key derived from the provider's
secret key and never shown again. A code is accepted within one step of
clock drift, once: a replay of the same time step is refused (``kv.add``).
Wrong codes count in the same per-account failure counter as SMS codes
(:mod:`idp.lockout`), so switching factor does not buy more guesses.
"""

from __future__ import annotations

import base64
import hmac
import io

import pyotp
import qrcode
import qrcode.image.svg
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app

from idp.core import audit
from idp.core.hashing import derive_key, legacy_key
from idp.core.storage import Account
from idp.login import lockout, otp

PREFIX = "f1:"
STEP = 30
DRIFT_STEPS = 1


class TotpError(Exception):
    """``code``: ``invalid`` or ``locked`` (with ``retry_after``)."""

    def __init__(self, code: str, retry_after: int | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.retry_after = retry_after


def _fernet() -> MultiFernet:
    """Seals with the TOTP key; also opens secrets sealed before keys per purpose."""
    keys = (derive_key("totp"), legacy_key("idp-totp-secret"))
    return MultiFernet([Fernet(base64.urlsafe_b64encode(k)) for k in keys])


def new_secret() -> str:
    return pyotp.random_base32(32)


def seal(secret: str) -> str:
    return PREFIX + _fernet().encrypt(secret.encode()).decode()


def unseal(stored: str) -> str | None:
    if not stored or not stored.startswith(PREFIX):
        return None
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        return None


def issuer() -> str:
    return otp.settings().totp_issuer or current_app.extensions["idp.settings"].service_name


def provisioning_uri(account: Account, secret: str) -> str:
    return pyotp.TOTP(secret, interval=STEP).provisioning_uri(
        name=account.username or account.email or account.sub, issuer_name=issuer()
    )


def qr_data_uri(text: str) -> str:
    """An SVG QR code as a ``data:`` URI (the page's CSP allows ``img-src data:``)."""
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buf = io.BytesIO()
    image.save(buf)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _matching_step(secret: str, code: str, now: int) -> int | None:
    totp = pyotp.TOTP(secret, interval=STEP)
    typed = "".join((code or "").split())
    if len(typed) != 6 or not typed.isdigit():
        return None
    for drift in range(-DRIFT_STEPS, DRIFT_STEPS + 1):
        at = now + drift * STEP
        if hmac.compare_digest(totp.at(at), typed):
            return totp.timecode(at)
    return None


def check_secret(secret: str, code: str, account_id: int) -> bool:
    """Enrolment: does the first code match the secret being enrolled? (It cannot be used again.)"""
    step = _matching_step(secret, code, otp.now())
    if step is None:
        return False
    current_app.extensions["idp.kv"].add(f"totp:used:{account_id}:{step}", b"1", STEP * (2 * DRIFT_STEPS + 2))
    return True


def verify(account: Account, code: str) -> None:
    """Accept a code from the account's app once, or raise :class:`TotpError`."""
    s = otp.settings()
    now = otp.now()
    key = otp.failure_key("login", "", account.id)  # the same counter as the SMS code
    try:
        number = lockout.attempt(key, s.policy, now)
    except lockout.Locked as exc:
        audit.record("totp_check", "failure", account_id=account.id, reason="locked")
        raise TotpError("locked", exc.retry_after) from None
    secret = unseal(account.totp_secret or "")
    step = _matching_step(secret, code, now) if secret else None
    kv = current_app.extensions["idp.kv"]
    if step is not None and not kv.add(f"totp:used:{account.id}:{step}", b"1", STEP * (2 * DRIFT_STEPS + 2)):
        step = None  # this time step's code was already used: a replay
    if step is None:
        locked_for = lockout.failed(key, s.policy, now, number)
        audit.record("totp_check", "failure", account_id=account.id, attempt=number)
        if locked_for:
            audit.record("lockout", "failure", account_id=account.id, factor="totp", seconds=locked_for)
            raise TotpError("locked", locked_for)
        raise TotpError("invalid")
    lockout.succeeded(key, now)
    audit.record("totp_check", account_id=account.id)
