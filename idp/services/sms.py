"""Sending SMS: one :class:`SmsGateway` interface, an HTTP gateway and two development backends.

In the manner of GOV.UK Notify's SMS clients, every backend's public
:meth:`~LoggedSmsGateway.send` wraps one provider-specific ``_deliver`` with
logging and timing. The log shows the masked number, the outcome and the
duration; never the text, which carries a one-time code (NIST SP 800-63B
§5.1.3.2 treats SMS as a restricted out-of-band authenticator; the caps and
anti-pumping rules live with the OTP logic, not here).

Backends, chosen by ``[sms] backend``:

* ``http``: any JSON or form HTTP API (``[sms.http]``), with retries and
  exponential backoff on timeouts, connection errors and 5xx only.
* ``console`` and ``outbox``: development only, refused in production.
"""

from __future__ import annotations

import logging
import re
import string
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO
from urllib.parse import urlsplit

import requests

from connectors.config import ConfigTable
from idp.core import metrics
from idp.core.phones import mask_phone
from idp.services.outbox import Outbox, read_backend_tables

log = logging.getLogger(__name__)

BACKENDS = ("console", "outbox", "http")
DEV_BACKENDS = ("console", "outbox")
PLACEHOLDERS = frozenset({"to", "text", "sender"})
DEFAULT_TEMPLATE = {"to": "{to}", "text": "{text}", "sender": "{sender}"}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")

# An alphanumeric sender id is at most 11 GSM characters; a numeric one is an E.164 number.
_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$|^\+?[0-9]{3,15}$")


class SmsDeliveryError(Exception):
    """The message was not accepted.

    ``code`` is ``refused`` (the gateway said no: a bad number, a barred
    destination, our credentials) or ``unavailable`` (timeouts, connection
    errors, 5xx after the retries). ``detail`` is for the log only.
    """

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class SmsGateway(Protocol):
    def send(self, to: str, text: str, key: str | None = None) -> None: ...


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpSmsSettings:
    """The ``[sms.http]`` table."""

    url: str
    method: str = "POST"
    body: str = "json"
    template: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TEMPLATE))
    auth_header: str = "Authorization"
    auth_value: str | None = field(default=None, repr=False)
    timeout: float = 5.0
    retries: int = 2
    backoff: float = 0.5

    @classmethod
    def from_table(cls, t: ConfigTable) -> HttpSmsSettings:
        url = t.str("url")
        if url is not None:
            parts = urlsplit(url)
            local = parts.hostname in LOCAL_HOSTS
            if not parts.hostname or parts.scheme not in ("https", "http"):
                t.error("url", "must be an absolute https URL")
            elif parts.scheme != "https" and not local:
                t.error("url", "must use https (http is allowed for localhost only)")
        method = t.str("method", "POST", choices=("POST", "PUT"))
        body = t.str("body", "json", choices=("json", "form"))
        template = _read_template(t)
        auth_header = t.str("auth_header", "Authorization")
        if auth_header is not None and not re.fullmatch(r"[A-Za-z0-9-]+", auth_header):
            t.error("auth_header", "must be an HTTP header name")
        auth_value = t.secret("auth_value", None)
        timeout = t.float("timeout", 5.0, min=0.1, max=60)
        retries = t.int("retries", 2, min=0, max=5)
        backoff = t.float("backoff", 0.5, min=0, max=30)
        t.finish()
        return cls(
            url=url or "",
            method=method,
            body=body,
            template=template,
            auth_header=auth_header,
            auth_value=auth_value,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
        )


@dataclass(frozen=True)
class SmsSettings:
    """The ``[sms]`` table."""

    backend: str
    sender: str = "IDP"
    outbox: Path | None = None
    http: HttpSmsSettings | None = None

    @classmethod
    def from_table(cls, t: ConfigTable) -> SmsSettings:
        """Read and finish ``[sms]`` (and ``[sms.http]``); errors go to ``t.errors``."""
        backend = t.str("backend", choices=BACKENDS)
        sender = t.str("sender", "IDP")
        if sender is not None and not _SENDER.match(sender):
            t.error("sender", "must be 1-11 letters, digits or spaces (with a letter), or a phone number")
        outbox, http = read_backend_tables(t, backend, "http", HttpSmsSettings.from_table)
        t.finish()
        return cls(backend=backend or "", sender=sender, outbox=outbox, http=http)


def _read_template(t: ConfigTable) -> dict[str, str]:
    if not t.has("template"):
        return dict(DEFAULT_TEMPLATE)
    table = t.table("template")
    if not isinstance(t.data["template"], dict):
        return dict(DEFAULT_TEMPLATE)
    template = {}
    for name in table.data:
        value = table.str(name)
        if value is None:
            continue
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        except ValueError:
            table.error(name, "is not a valid template (unbalanced braces?)")
            continue
        unknown = fields - PLACEHOLDERS
        if unknown:
            table.error(
                name, f"unknown placeholder {{{sorted(unknown)[0]}}}; use {{to}}, {{text}}, {{sender}}"
            )
            continue
        template[name] = value
    if not any("{to}" in v for v in template.values()):
        t.error("template", "must put {to} in some field")
    if not any("{text}" in v for v in template.values()):
        t.error("template", "must put {text} in some field")
    table.finish()
    return template


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------


class LoggedSmsGateway:
    """The public ``send`` of every backend: logging and timing around ``_deliver``."""

    name = "sms"

    def __init__(self, sender: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.sender = sender
        self._clock = clock

    def send(self, to: str, text: str, key: str | None = None) -> None:
        """Deliver one message; ``key`` (the outbound queue's) lets a gateway drop a repeat."""
        started = self._clock()
        try:
            self._deliver(to, text, key)
        except SmsDeliveryError as exc:
            log.warning(
                "sms to %s via %s: %s (%s) in %.0f ms",
                mask_phone(to),
                self.name,
                exc.code,
                exc.detail,
                (self._clock() - started) * 1000,
            )
            metrics.message("sms", "failed")
            raise
        metrics.message("sms", "sent")
        log.info(
            "sms to %s via %s: sent in %.0f ms", mask_phone(to), self.name, (self._clock() - started) * 1000
        )

    def _deliver(self, to: str, text: str, key: str | None) -> None:
        raise NotImplementedError


class ConsoleSmsGateway(LoggedSmsGateway):
    """Development: prints the whole message, code included, to the terminal."""

    name = "console"

    def __init__(self, sender: str, *, stream: TextIO | None = None, **kwargs: Any) -> None:
        super().__init__(sender, **kwargs)
        self.stream = stream

    def _deliver(self, to: str, text: str, key: str | None) -> None:
        stream = self.stream or sys.stderr
        print(f"[SMS from {self.sender} to {to}] {text}", file=stream, flush=True)


class OutboxSmsGateway(LoggedSmsGateway):
    """Development: appends the message to the shared outbox file."""

    name = "outbox"

    def __init__(self, sender: str, outbox: Outbox, **kwargs: Any) -> None:
        super().__init__(sender, **kwargs)
        self.outbox = outbox

    def _deliver(self, to: str, text: str, key: str | None) -> None:
        record = {"channel": "sms", "to": to, "sender": self.sender, "text": text}
        self.outbox.append({**record, "key": key} if key else record)


class HttpSmsGateway(LoggedSmsGateway):
    """A JSON or form HTTP API, described by ``[sms.http]``."""

    name = "http"

    def __init__(
        self,
        sender: str,
        settings: HttpSmsSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(sender, **kwargs)
        self.settings = settings
        self.session = session or metrics.UpstreamSession("sms_gateway")
        self._sleep = sleep

    def _deliver(self, to: str, text: str, key: str | None) -> None:
        s = self.settings
        fields = {k: v.format(to=to, text=text, sender=self.sender) for k, v in s.template.items()}
        headers = {s.auth_header: s.auth_value} if s.auth_value else {}
        if key:
            # The same key on every try of one message: a gateway that honours it sends once
            # even when our try timed out after it had accepted the message.
            headers["Idempotency-Key"] = key
        body = {"json": fields} if s.body == "json" else {"data": fields}
        attempts = s.retries + 1
        for attempt in range(attempts):
            if attempt:
                self._sleep(s.backoff * 2 ** (attempt - 1))
            try:
                response = self.session.request(
                    s.method, s.url, headers=headers, timeout=s.timeout, allow_redirects=False, **body
                )
            except (requests.Timeout, requests.ConnectionError) as exc:
                problem = "timeout" if isinstance(exc, requests.Timeout) else "connection error"
                log.info("sms gateway attempt %d/%d: %s", attempt + 1, attempts, problem)
                continue
            except requests.RequestException as exc:
                raise SmsDeliveryError("unavailable", type(exc).__name__) from None
            status = response.status_code
            response.close()  # the body may echo the text; it is never read
            if 200 <= status < 300:
                return
            if status >= 500:
                log.info("sms gateway attempt %d/%d: HTTP %d", attempt + 1, attempts, status)
                continue
            if status == 429:
                # Throttled: the number is fine, so "refused" would mislead the user;
                # retrying at once would make it worse.
                raise SmsDeliveryError("unavailable", "HTTP 429")
            if 400 <= status < 500:
                raise SmsDeliveryError("refused", f"HTTP {status}")
            raise SmsDeliveryError("unavailable", f"unexpected HTTP {status}")
        raise SmsDeliveryError("unavailable", f"gave up after {attempts} attempts")


def make_sms_gateway(
    settings: SmsSettings,
    *,
    production: bool,
    http: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SmsGateway:
    """The gateway ``settings.backend`` names; development backends raise ValueError in production."""
    if production and settings.backend in DEV_BACKENDS:
        raise ValueError(
            f"[sms] backend = {settings.backend!r} is for development only and is refused "
            'in production; configure backend = "http" and [sms.http]'
        )
    if settings.backend == "console":
        return ConsoleSmsGateway(settings.sender)
    if settings.backend == "outbox":
        if settings.outbox is None:
            raise ValueError("[sms] backend = 'outbox' needs an outbox path")
        return OutboxSmsGateway(settings.sender, Outbox(settings.outbox))
    if settings.backend == "http":
        if settings.http is None:
            raise ValueError("[sms] backend = 'http' needs an [sms.http] table")
        return HttpSmsGateway(settings.sender, settings.http, session=http, sleep=sleep)
    raise ValueError(f"unknown [sms] backend {settings.backend!r}")
