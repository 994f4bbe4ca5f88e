"""One-time codes by SMS: the restricted out-of-band authenticator (NIST SP 800-63B §5.1.3).

A code is 6 digits from :mod:`secrets` (≈ 20 bits), kept only as a keyed
hash in the shared store (:mod:`idp.kv`), bound to ``(purpose, binding)`` —
the binding is the login attempt or the registration it belongs to — valid
``code_ttl`` seconds and usable once. Sending a new code for a binding
replaces (invalidates) the previous one once the new SMS has gone out: until
then the code the person already received stays valid. A resend is allowed
after ``resend_after`` seconds, at most ``max_resends`` times.

The SMS itself goes through the outbound queue (:mod:`idp.services.queue`):
the request only records it. If it can never be sent (gateway refusal, an
outage longer than the retries), the worker gives back the resend and every
cap it counted, and :func:`delivery` tells the page.

Guessing is limited by a failure counter per account (per binding when there
is no account yet) in the database (:mod:`idp.lockout`): resends, new
transactions and new IPs do not reset it, every try is reserved atomically
before the code is compared, and reaching ``max_failures`` locks with
growing delays. Wrong and expired codes get the same answer.

SMS pumping (toll fraud) is held off by daily caps per account and per
number, an hourly cap per IP and a global daily budget, all counted in the
shared store, and by a country prefix allowlist on E.164 numbers.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass, field

from flask import current_app, has_request_context, request
from flask_babel import force_locale
from flask_babel import gettext as _

from idp.core import audit
from idp.core.hashing import keyed_digest
from idp.core.phones import PhoneError, mask_phone, normalize_phone
from idp.login import lockout
from idp.login.lockout import locked_message
from idp.services import queue

log = logging.getLogger(__name__)

CODE_DIGITS = 6
ERROR_CODES = (
    "invalid",
    "locked",
    "resend_too_soon",
    "too_many_resends",
    "cap_reached",
    "delivery_refused",
    "delivery_unavailable",
)
DAY = 86400
HOUR = 3600


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Caps:
    per_account_per_day: int = 10
    per_number_per_day: int = 10
    per_ip_per_hour: int = 30
    global_per_day: int = 10000


@dataclass(frozen=True)
class OtpSettings:
    """The ``[otp]`` table (every key optional)."""

    code_ttl: int = 300
    resend_after: int = 60
    max_resends: int = 3
    max_failures: int = 5
    lockout_base: int = 60
    lockout_max: int = 3600
    caps: Caps = field(default_factory=Caps)
    allowed_prefixes: tuple[str, ...] = ("+32",)
    default_region: str = "BE"
    totp_issuer: str | None = None  # the service name when not set
    password_max_failures: int = 10
    login_per_ip_per_minute: int = 30
    # May a password login of an account with no verified number bind its first number (by
    # an SMS code to it)? Off by default: the password alone then picks the second factor.
    first_number_at_login: bool = False

    @classmethod
    def from_table(cls, t) -> OtpSettings:
        d = cls()
        code_ttl = t.int("code_ttl", d.code_ttl, min=30, max=600)
        resend_after = t.int("resend_after", d.resend_after, min=0, max=600)
        max_resends = t.int("max_resends", d.max_resends, min=0, max=10)
        max_failures = t.int("max_failures", d.max_failures, min=1, max=100)
        lockout_base = t.int("lockout_base", d.lockout_base, min=1, max=86400)
        lockout_max = t.int("lockout_max", d.lockout_max, min=1, max=7 * 86400)
        if isinstance(lockout_base, int) and isinstance(lockout_max, int) and lockout_max < lockout_base:
            t.error("lockout_max", "must be at least lockout_base")
        ct = t.table("caps")
        dc = Caps()
        caps = Caps(
            per_account_per_day=ct.int("per_account_per_day", dc.per_account_per_day, min=1, max=1000),
            per_number_per_day=ct.int("per_number_per_day", dc.per_number_per_day, min=1, max=1000),
            per_ip_per_hour=ct.int("per_ip_per_hour", dc.per_ip_per_hour, min=1, max=100000),
            global_per_day=ct.int("global_per_day", dc.global_per_day, min=1, max=10_000_000),
        )
        ct.finish()
        prefixes = t.list("allowed_prefixes", list(d.allowed_prefixes))
        for i, p in enumerate(prefixes or []):
            if not (p.startswith("+") and p[1:].isdigit() and 2 <= len(p) <= 5):
                t.error(f"allowed_prefixes[{i}]", "must be a country calling code such as +32")
        region = t.str("default_region", d.default_region)
        if region is not None and not (len(region) == 2 and region.isalpha() and region.isupper()):
            t.error("default_region", "must be a two-letter country code such as BE")
        totp_issuer = t.str("totp_issuer", None)
        password_max_failures = t.int("password_max_failures", d.password_max_failures, min=1, max=100)
        per_ip = t.int("login_per_ip_per_minute", d.login_per_ip_per_minute, min=1, max=100000)
        first_number = t.bool("first_number_at_login", d.first_number_at_login)
        t.finish()
        return cls(
            code_ttl=code_ttl,
            resend_after=resend_after,
            max_resends=max_resends,
            max_failures=max_failures,
            lockout_base=lockout_base,
            lockout_max=lockout_max,
            caps=caps,
            allowed_prefixes=tuple(prefixes or ()),
            default_region=region or d.default_region,
            totp_issuer=totp_issuer,
            password_max_failures=password_max_failures,
            login_per_ip_per_minute=per_ip,
            first_number_at_login=bool(first_number),
        )

    @property
    def policy(self) -> lockout.Policy:
        return lockout.Policy(self.max_failures, self.lockout_base, self.lockout_max)

    @property
    def password_policy(self) -> lockout.Policy:
        return lockout.Policy(self.password_max_failures, self.lockout_base, self.lockout_max)


class OtpError(Exception):
    """``code`` is one of :data:`ERROR_CODES`; ``retry_after`` in seconds when it helps."""

    def __init__(self, code: str, retry_after: int | None = None, detail: str = "") -> None:
        super().__init__(code if retry_after is None else f"{code} (retry after {retry_after} s)")
        self.code = code
        self.retry_after = retry_after
        self.detail = detail


# ---------------------------------------------------------------------------
# Helpers shared with the login and account pages
# ---------------------------------------------------------------------------


def settings() -> OtpSettings:
    return current_app.extensions["idp.settings"].sections.get("otp") or OtpSettings()


def now() -> int:
    """The clock for expiries and windows; tests put theirs in ``app.extensions["idp.clock"]``."""
    return int(current_app.extensions.get("idp.clock", time.time)())


def normalize_number(raw: str) -> str:
    """A number typed by a person as E.164, with the allowlist of ``[otp]``; :class:`PhoneError`."""
    s = settings()
    return normalize_phone(raw, default_region=s.default_region, allowed_prefixes=s.allowed_prefixes)


# Codes asked for after the person proved a first factor (the password login's SMS code,
# a new number confirmed from a logged-in session) share one failure counter and one SMS
# budget per account. Flows that send a code on a mere identifier (contract login,
# activation, registration, forgotten username) count apart: whoever knows a username
# must not be able to lock the password login's second factor or use up its SMS budget.
AFTER_FIRST_FACTOR = frozenset({"login", "verify_phone", "phone_change"})


def _family(purpose: str) -> str:
    return "" if purpose in AFTER_FIRST_FACTOR else f":{purpose}"


def failure_key(purpose: str, binding: str, account_id: int | None) -> str:
    if account_id is None:
        return lockout.key(f"otp:{purpose}", binding=binding)
    return lockout.key(f"otp{_family(purpose)}", account_id=account_id)


def _code_key(purpose: str, binding: str) -> str:
    return f"otp:code:{purpose}:{binding}"


def _previous_key(purpose: str, binding: str) -> str:
    return _code_key(purpose, binding) + ":previous"


def _sends_key(purpose: str, binding: str) -> str:
    return f"otp:sends:{purpose}:{binding}"


def _hash(purpose: str, binding: str, code: str) -> str:
    return keyed_digest("otp", purpose, binding, code)


def _purpose_text(purpose: str) -> str:
    texts = {
        "login": _("to log in"),
        "contract_login": _("to log in"),
        "register": _("to confirm your registration"),
        "registration": _("to confirm your registration"),
        "activation": _("to activate your account"),
        "verify_phone": _("to confirm your mobile number"),
        "phone_change": _("to confirm your new mobile number"),
        "forgot_username": _("to receive your username"),
    }
    return texts.get(purpose, _("to confirm your request"))


def sms_text(purpose: str, code: str, lang: str | None) -> str:
    """The message, in the person's language: the code, what it is for, the service, a warning."""
    settings_ = current_app.extensions["idp.settings"]
    lang = lang if lang in settings_.languages else settings_.default_language
    with force_locale(lang):
        text = _(
            "%(code)s is your %(service)s code %(purpose)s. It is valid for %(minutes)d minutes. "
            "Never give it to anyone.",
            code=code,
            service=settings_.service_name,
            purpose=_purpose_text(purpose),
            minutes=max(1, settings().code_ttl // 60),
        )
    # The origin-bound line lets browsers offer the code (WebOTP) only on our own pages.
    host = settings_.issuer.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return f"{text}\n\n@{host} #{code}"


def _client_ip() -> str | None:
    return request.remote_addr if has_request_context() else None


# ---------------------------------------------------------------------------
# Sending
# ---------------------------------------------------------------------------


def send_code(*, purpose: str, binding: str, phone: str, account_id: int | None, lang: str) -> None:
    """Send a new code for ``(purpose, binding)`` to ``phone``; :class:`OtpError` when not sent."""
    s = settings()
    kv = current_app.extensions["idp.kv"]
    t = now()

    def refuse(code: str, reason: str, retry_after: int | None = None, to: str | None = None):
        audit.record(
            "code_send_failed",
            "failure",
            account_id=account_id,
            purpose=purpose,
            reason=reason,
            to=mask_phone(to) if to else None,
        )
        return OtpError(code, retry_after, reason)

    try:
        number = normalize_phone(phone, default_region=s.default_region, allowed_prefixes=s.allowed_prefixes)
    except PhoneError as exc:
        raise refuse("delivery_refused", f"number_{exc.code}") from None

    previous = kv.get(_code_key(purpose, binding))
    if previous is not None:
        earlier = json.loads(previous)
        wait = earlier.get("sent", 0) + s.resend_after - t
        # A send that failed for good does not make the person wait for the next try.
        if wait > 0 and queue.status(earlier.get("msg")) != queue.FAILED:
            raise OtpError("resend_too_soon", wait)
    sends = kv.incr(_sends_key(purpose, binding), DAY)
    if sends > 1 + s.max_resends:
        raise refuse("too_many_resends", "too_many_resends", to=number)

    cap, counted = _over_cap(kv, s.caps, t, account_id, number, purpose)
    if cap:
        kv.incr(_sends_key(purpose, binding), DAY, -1)
        log.warning("sms cap reached: %s", cap)
        raise refuse("cap_reached", cap, to=number)

    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    keep = s.code_ttl + s.resend_after + 60
    # The worker sends it; if it never can, the send and the caps it counted are given back.
    message = queue.enqueue(
        "sms",
        number,
        {"text": sms_text(purpose, code, lang)},
        ttl=s.code_ttl,
        release=[(_sends_key(purpose, binding), DAY), *counted],
    )
    record = {
        "h": _hash(purpose, binding, code),
        "exp": t + s.code_ttl,
        "sent": t,
        "acct": account_id,
        "n": sends,
        "msg": message,
    }
    if previous is not None:
        # The code the person already has stays valid until this one has really gone out.
        kv.set(_previous_key(purpose, binding), previous, keep)
    kv.set(_code_key(purpose, binding), json.dumps(record).encode(), keep)
    audit.record("code_sent", account_id=account_id, purpose=purpose, to=mask_phone(number), resend=sends > 1)


def delivery(purpose: str, binding: str) -> str | None:
    """What became of the latest code's SMS: ``pending``, ``sent``, ``failed`` (None: no code)."""
    raw = current_app.extensions["idp.kv"].get(_code_key(purpose, binding))
    return None if raw is None else queue.status(json.loads(raw).get("msg"))


def _over_cap(
    kv, caps: Caps, t: int, account_id: int | None, number: str, purpose: str
) -> tuple[str | None, list[tuple[str, int]]]:
    """Count this send against every cap: (the first cap it exceeds, None if none; the counters
    counted, to give back if the message is never sent)."""
    day, hour = t // DAY, t // HOUR
    family = _family(purpose)
    checks = []
    if account_id is not None:
        checks.append(
            ("per_account_per_day", f"otp:cap:acct:{account_id}{family}:{day}", DAY, caps.per_account_per_day)
        )
    by_number = lockout.key(f"otp:cap:num{family}:{day}", typed=number)
    checks.append(("per_number_per_day", by_number, DAY, caps.per_number_per_day))
    ip = _client_ip()
    if ip:
        by_ip = lockout.key(f"otp:cap:ip:{hour}", typed=ip)
        checks.append(("per_ip_per_hour", by_ip, HOUR, caps.per_ip_per_hour))
    checks.append(("global_per_day", f"otp:cap:all:{day}", DAY, caps.global_per_day))
    counted = []
    for name, key, ttl, limit in checks:
        counted.append((key, ttl + 60))
        if kv.incr(key, ttl + 60) > limit:
            # Refused sends do not use up the other budgets.
            for k, tt in counted:
                kv.incr(k, tt, -1)
            return name, []
    return None, counted


def budget_used(app) -> float:
    """SMS sent today against the global daily budget (the ``global_per_day`` cap), for metrics."""
    raw = app.extensions["idp.kv"].get(
        f"otp:cap:all:{int(app.extensions.get('idp.clock', time.time)()) // DAY}"
    )
    return float(int(raw)) if raw else 0.0


def budget_limit(app) -> float:
    return float(app.extensions["idp.settings"].sections["otp"].caps.global_per_day)


def resend_wait(purpose: str, binding: str) -> int:
    """Seconds before a resend is allowed for this binding (0: now)."""
    raw = current_app.extensions["idp.kv"].get(_code_key(purpose, binding))
    if raw is None:
        return 0
    return max(0, json.loads(raw).get("sent", 0) + settings().resend_after - now())


def resends_left(purpose: str, binding: str) -> int:
    raw = current_app.extensions["idp.kv"].get(_sends_key(purpose, binding))
    sends = int(raw) if raw else 0
    return max(0, 1 + settings().max_resends - sends)


# ---------------------------------------------------------------------------
# Checking
# ---------------------------------------------------------------------------


def check_code(*, purpose: str, binding: str, code: str, account_id: int | None) -> None:
    """Accept the code once, or raise :class:`OtpError` (``invalid`` or ``locked``)."""
    s = settings()
    kv = current_app.extensions["idp.kv"]
    t = now()
    key = failure_key(purpose, binding, account_id)
    try:
        number = lockout.attempt(key, s.policy, t)
    except lockout.Locked as exc:
        audit.record("code_check", "failure", account_id=account_id, purpose=purpose, reason="locked")
        raise OtpError("locked", exc.retry_after) from None

    typed = "".join((code or "").split())
    ok = False
    if len(typed) == CODE_DIGITS and typed.isdigit():
        ok = _take(kv, _code_key(purpose, binding), purpose, binding, typed, account_id, t)
        if not ok and _previous_still_valid(kv, purpose, binding):
            ok = _take(kv, _previous_key(purpose, binding), purpose, binding, typed, account_id, t)
        if ok:
            kv.delete(_code_key(purpose, binding))
            kv.delete(_previous_key(purpose, binding))
    if not ok:
        locked_for = lockout.failed(key, s.policy, t, number)
        audit.record("code_check", "failure", account_id=account_id, purpose=purpose, attempt=number)
        if locked_for:
            audit.record("lockout", "failure", account_id=account_id, purpose=purpose, seconds=locked_for)
            raise OtpError("locked", locked_for)
        raise OtpError("invalid")
    lockout.succeeded(key, t)
    kv.delete(_sends_key(purpose, binding))
    audit.record("code_check", account_id=account_id, purpose=purpose)


def _take(kv, key: str, purpose: str, binding: str, typed: str, account_id, t: int) -> bool:
    raw = kv.get(key)
    if raw is None:
        return False
    record = json.loads(raw)
    ok = (
        hmac.compare_digest(record["h"], _hash(purpose, binding, typed))
        and record["exp"] > t
        and record.get("acct") == account_id
    )
    # Single use: of two parallel right answers only the one that takes the record wins.
    return ok and kv.pop(key) == raw


def _previous_still_valid(kv, purpose: str, binding: str) -> bool:
    """The code sent before a resend counts while the resend's SMS has not gone out."""
    raw = kv.get(_code_key(purpose, binding))
    if raw is None:
        return True
    return queue.status(json.loads(raw).get("msg")) != queue.SENT


def discard(purpose: str, binding: str) -> None:
    """Forget the code of a binding (the login or registration was abandoned)."""
    kv = current_app.extensions["idp.kv"]
    kv.delete(_code_key(purpose, binding))
    kv.delete(_previous_key(purpose, binding))


def is_locked(account_id: int) -> int:
    """Seconds the account's second factor stays locked (0: not locked)."""
    return lockout.status(failure_key("login", "", account_id), now())[1]


def send_error_message(code: str | None, retry_after: int | None = None) -> str | None:
    messages = {
        "delivery_refused": _(
            "We could not send an SMS to your number. Please log in with itsme, your eID "
            "card or your authenticator app, or contact us."
        ),
        "delivery_unavailable": _(
            "The SMS service is not answering right now. Ask for a new code in a moment, "
            "or log in with itsme, your eID card or your authenticator app."
        ),
        "cap_reached": _(
            "We have sent too many codes for now. Please try again later, or log in with itsme, "
            "your eID card or your authenticator app."
        ),
        "too_many_resends": _(
            "You cannot ask for more codes for this login. Start again, or log in with itsme, "
            "your eID card or your authenticator app."
        ),
        "resend_too_soon": _("Please wait a little before asking for a new code."),
        "delivery_failed": _(
            "Your code could not be sent. Ask for a new code, or log in with itsme, your eID card "
            "or your authenticator app."
        ),
    }
    return messages.get(code) if code else None


def code_error(code: str, retry_after: int | None) -> str:
    if code == "locked":
        return locked_message(retry_after or 60)
    # Wrong and expired codes get the same answer.
    return _("This code is not correct or no longer valid. Check the SMS or ask for a new code.")
