"""The SMS-code step shared by registration, the letter activation, the contract
login and the forgotten username.

Each of these flows starts from something a person types (a card number and
a date of birth, a contract number, a username) that may or may not match a
record. The answer must not tell (OWASP ASVS V2.2.x, NIST SP 800-63B §5.2.2):
so the step is kept in the browser session the same way whether or not a
record matched, and only the outcome of :func:`idp.otp.send_code` /
:func:`idp.otp.check_code` for a real number differs, invisibly. When nothing
matched no SMS goes out and every code is wrong. Delivery failures are
logged and audited but not shown: the page always says when the code
arrives, what can stop it (roaming, network) and offers itsme / eID.

The resend throttle and the wrong-code limit shown to the person are kept
here per flow, the same for matched and unmatched starts; :mod:`idp.otp`
enforces its own (per code, per account, per number, global) caps behind it.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app, request, session
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from idp.core.phones import mask_phone
from idp.login.otp import OtpError, check_code, send_code, settings

log = logging.getLogger(__name__)


def now() -> int:
    """Seconds since the epoch from the app's clock (tests inject ``idp.clock``)."""
    return int(current_app.extensions.get("idp.clock", time.time)())


def _limits() -> tuple[int, int, int]:
    """(resend interval, sends, wrong codes): the ``[otp]`` policy, so that a flow
    whose start matched nothing stops exactly where a real one would."""

    otp = settings()
    return otp.resend_after, otp.max_resends + 1, otp.max_failures


def get(key: str) -> dict[str, Any] | None:
    state = session.get(key)
    return state if isinstance(state, dict) else None


def drop(key: str) -> None:
    session.pop(key, None)


def start(
    key: str,
    *,
    purpose: str,
    phone: str | None,
    account_id: int | None = None,
    data: dict[str, Any] | None = None,
    flow: str,
) -> dict[str, Any]:
    """A new code step in the session under ``key``; sends the first code when ``phone`` is known."""
    state = {
        "purpose": purpose,
        "binding": secrets.token_urlsafe(16),
        "phone": phone,
        "account_id": account_id,
        "sent_at": now(),
        "sends": 1,
        "failures": 0,
        "verified": False,
        "flow": flow,
        "data": data or {},
    }
    session[key] = state
    _deliver(state)
    return state


def resend(key: str) -> str | None:
    """Send a new code (the previous one stops working); an error message or None."""
    state = get(key)
    if state is None:
        return _("This step has expired. Please start again.")
    interval, max_sends, _failures = _limits()
    wait = state["sent_at"] + interval - now()
    if wait > 0:
        return ngettext(
            "Please wait %(num)d second before asking for a new code.",
            "Please wait %(num)d seconds before asking for a new code.",
            wait,
        )
    if state["sends"] >= max_sends:
        return _("No more codes can be sent for now. Please try again later or log in with itsme® or eID.")
    state["sent_at"] = now()
    state["sends"] += 1
    session[key] = state
    _deliver(state)
    return None


def verify(key: str, code: str) -> tuple[bool, str | None]:
    """Check ``code``; (True, None) once, or (False, message). Too many wrong codes end the step."""

    state = get(key)
    if state is None:
        return False, _("This step has expired. Please start again.")
    code = "".join(c for c in (code or "") if not c.isspace())
    ok = False
    try:
        check_code(
            purpose=state["purpose"], binding=state["binding"], code=code, account_id=state["account_id"]
        )
        ok = state["phone"] is not None
    except OtpError:
        # "locked" is answered like a wrong code: the step ends after the same number of
        # tries whether or not the identifier matched an account (no enumeration).
        pass
    if ok:
        state["verified"] = True
        session[key] = state
        return True, None
    state["failures"] += 1
    session[key] = state
    _interval, _sends, max_failures = _limits()
    if state["failures"] >= max_failures:
        drop(key)
        return False, _("Too many wrong codes. Please start again later, or log in with itsme® or eID.")
    return False, _("This code is not correct or has expired. Check the last SMS you received.")


@dataclass(frozen=True)
class CodeAnswer:
    """What one submission of a code page did (see :func:`answer_code`)."""

    verified: bool = False
    resent: bool = False
    ended: bool = False  # the step is over (too many wrong codes): start again
    error: str | None = None
    notice: str | None = None


def answer_code(key: str, code: str | None, *, equalize_resend: bool = True) -> CodeAnswer:
    """Handle a valid POST of a code page: "send a new code" (``action=resend``) or a code to check.

    A resend takes at least the response-time floor when ``equalize_resend`` (the
    flows whose start may have matched nothing), so that it does not tell either.
    """
    if request.form.get("action") == "resend":
        started = time.monotonic()
        error = resend(key)
        if equalize_resend:
            equalize(started)
        notice = None if error else _("A new code is on its way. The previous one no longer works.")
        return CodeAnswer(resent=True, error=error, notice=notice)
    ok, error = verify(key, code or "")
    return CodeAnswer(verified=ok, ended=not ok and get(key) is None, error=error)


def masked(state: dict[str, Any]) -> str | None:
    return mask_phone(state["phone"]) if state.get("phone") else None


def _deliver(state: dict[str, Any]) -> None:
    """Send the code when a number is known; failures are audited (by :mod:`idp.otp`), never shown."""

    if state["phone"] is None:
        return
    try:
        send_code(
            purpose=state["purpose"],
            binding=state["binding"],
            phone=state["phone"],
            account_id=state["account_id"],
            lang=str(get_locale()),
        )
    except OtpError as exc:
        log.warning("%s: SMS code not sent: %s", state["flow"], exc.code)


def equalize(started: float) -> None:
    """Make an answer that may or may not have sent a message take at least the configured floor.

    ``started`` is ``time.monotonic()`` at the start of the request. Sending an
    SMS or an e-mail only for a matching record would otherwise show in the
    response time.
    """
    settings = current_app.extensions["idp.settings"].sections.get("registration")
    floor = (settings.recovery.response_time_floor_ms if settings else 600) / 1000
    remaining = floor - (time.monotonic() - started)
    if remaining > 0:
        current_app.extensions.get("idp.sleep", time.sleep)(remaining)
