"""Sending e-mail: one :class:`Mailer` interface, SMTP and two development backends.

Messages are MIME ``multipart/alternative`` (RFC 2046 §5.1.4): a plain-text
part and, when given, an HTML part, with ``Date`` and ``Message-ID`` headers
(RFC 5322 §3.6). SMTP uses STARTTLS (RFC 3207) or implicit TLS (RFC 8314);
plain SMTP is accepted only to a relay on this machine. Every backend's public
``send`` wraps one ``_deliver`` with logging and timing; the log names only
the recipient's domain, never the address or the content (which carries
reset and confirmation links).

Backends, chosen by ``[mail] backend``: ``smtp``; ``console`` and ``outbox``
for development, refused in production.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any, Protocol, TextIO

from email_validator import EmailNotValidError, validate_email

from connectors.config import ConfigTable
from idp.core import metrics
from idp.services.outbox import Outbox, read_backend_tables

log = logging.getLogger(__name__)

BACKENDS = ("console", "outbox", "smtp")
DEV_BACKENDS = ("console", "outbox")
SECURITY = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class EmailMessage:
    to: str
    subject: str
    text: str
    html: str | None = None


class MailDeliveryError(Exception):
    """The message was not handed over. ``code``: ``refused`` (the relay refused
    the recipient) or ``unavailable`` (connection, TLS, authentication, timeout).
    ``detail`` is for the log only."""

    def __init__(self, code: str = "unavailable", detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class Mailer(Protocol):
    def send(self, message: EmailMessage) -> None: ...


# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    """The ``[mail.smtp]`` table."""

    host: str
    port: int = 587
    security: str = "starttls"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: int = 10
    ca_file: Path | None = None

    @classmethod
    def from_table(cls, t: ConfigTable) -> SmtpSettings:
        host = t.str("host")
        security = t.str("security", "starttls", choices=SECURITY)
        port = t.int("port", DEFAULT_PORTS.get(security, 587), min=1, max=65535)
        if security == "none" and host is not None and host not in LOCAL_HOSTS:
            t.error("security", 'may be "none" only for a relay on localhost; use "starttls" or "tls"')
        username = t.str("username", None)
        password = t.secret("password", None)
        if t.has("username") and not t.has("password"):
            t.error("password", "is required with username")
        if t.has("password") and not t.has("username"):
            t.error("username", "is required with password")
        timeout = t.int("timeout", 10, min=1, max=120)
        ca_file = t.path_value("ca_file", None)
        t.finish()
        return cls(
            host=host or "",
            port=port,
            security=security,
            username=username,
            password=password,
            timeout=timeout,
            ca_file=ca_file,
        )


@dataclass(frozen=True)
class MailSettings:
    """The ``[mail]`` table."""

    backend: str
    sender: str
    sender_name: str | None = None
    outbox: Path | None = None
    smtp: SmtpSettings | None = None

    @classmethod
    def from_table(cls, t: ConfigTable) -> MailSettings:
        """Read and finish ``[mail]`` (and ``[mail.smtp]``); errors go to ``t.errors``."""
        backend = t.str("backend", choices=BACKENDS)
        sender = t.str("sender")
        if sender is not None:
            try:
                sender = validate_email(sender, check_deliverability=False).normalized
            except EmailNotValidError as exc:
                t.error("sender", f"is not a valid e-mail address: {exc}")
        sender_name = t.str("sender_name", None)
        if sender_name is not None and any(c in sender_name for c in "\r\n"):
            t.error("sender_name", "must be one line")
        outbox, smtp = read_backend_tables(t, backend, "smtp", SmtpSettings.from_table)
        t.finish()
        return cls(
            backend=backend or "", sender=sender or "", sender_name=sender_name, outbox=outbox, smtp=smtp
        )


# ---------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2] or "?"


class LoggedMailer:
    """The public ``send`` of every backend: logging and timing around ``_deliver``."""

    name = "mail"

    def __init__(
        self,
        sender: str,
        sender_name: str | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sender = sender
        self.sender_name = sender_name
        self._clock = clock
        self._now = now

    @property
    def from_header(self) -> str:
        return formataddr((self.sender_name, self.sender)) if self.sender_name else self.sender

    def send(self, message: EmailMessage) -> None:
        started = self._clock()
        domain = recipient_domain(message.to)
        try:
            self._deliver(message)
        except MailDeliveryError as exc:
            elapsed = (self._clock() - started) * 1000
            log.warning(
                "mail to @%s via %s: %s (%s) in %.0f ms", domain, self.name, exc.code, exc.detail, elapsed
            )
            metrics.message("email", "failed")
            raise
        metrics.message("email", "sent")
        log.info("mail to @%s via %s: sent in %.0f ms", domain, self.name, (self._clock() - started) * 1000)

    def build(self, message: EmailMessage) -> MimeMessage:
        """The MIME message: text/plain, or multipart/alternative with an HTML part."""
        mime = MimeMessage()
        mime["From"] = self.from_header
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = format_datetime(self._now())
        mime["Message-ID"] = make_msgid(domain=recipient_domain(self.sender))
        mime.set_content(message.text)
        if message.html is not None:
            mime.add_alternative(message.html, subtype="html")
        return mime

    def _deliver(self, message: EmailMessage) -> None:
        raise NotImplementedError


class ConsoleMailer(LoggedMailer):
    """Development: prints the whole message to the terminal."""

    name = "console"

    def __init__(
        self, sender: str, sender_name: str | None = None, *, stream: TextIO | None = None, **kw: Any
    ):
        super().__init__(sender, sender_name, **kw)
        self.stream = stream

    def _deliver(self, message: EmailMessage) -> None:
        stream = self.stream or sys.stderr
        print(
            f"[mail from {self.from_header} to {message.to}] {message.subject}\n{message.text}", file=stream
        )
        stream.flush()


class OutboxMailer(LoggedMailer):
    """Development: appends the message to the shared outbox file."""

    name = "outbox"

    def __init__(self, sender: str, outbox: Outbox, sender_name: str | None = None, **kw: Any) -> None:
        super().__init__(sender, sender_name, **kw)
        self.outbox = outbox

    def _deliver(self, message: EmailMessage) -> None:
        record = {"channel": "email", "to": message.to, "from": self.from_header, "subject": message.subject}
        self.outbox.append({**record, "text": message.text, "html": message.html})


class SmtpMailer(LoggedMailer):
    """An SMTP relay, described by ``[mail.smtp]``."""

    name = "smtp"

    def __init__(
        self, sender: str, settings: SmtpSettings, sender_name: str | None = None, **kw: Any
    ) -> None:
        super().__init__(sender, sender_name, **kw)
        self.settings = settings

    def _tls_context(self) -> ssl.SSLContext:
        ca_file = self.settings.ca_file
        return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.security == "tls":
            return smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self._tls_context())
        smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            try:
                smtp.starttls(context=self._tls_context())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _deliver(self, message: EmailMessage) -> None:
        mime = self.build(message)
        s = self.settings
        try:
            with metrics.upstream("smtp"), self._connect() as smtp:
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused:
            raise MailDeliveryError("refused", "recipient refused") from None
        except smtplib.SMTPAuthenticationError as exc:
            raise MailDeliveryError("unavailable", f"authentication failed ({exc.smtp_code})") from None
        except smtplib.SMTPException as exc:
            raise MailDeliveryError("unavailable", type(exc).__name__) from None
        except OSError as exc:  # refused connections, timeouts, TLS failures
            raise MailDeliveryError("unavailable", f"{type(exc).__name__}: {exc}") from None


def make_mailer(settings: MailSettings, *, production: bool) -> Mailer:
    """The mailer ``settings.backend`` names; development backends raise ValueError in production."""
    if production and settings.backend in DEV_BACKENDS:
        raise ValueError(
            f"[mail] backend = {settings.backend!r} is for development only and is refused "
            'in production; configure backend = "smtp" and [mail.smtp]'
        )
    if settings.backend == "console":
        return ConsoleMailer(settings.sender, settings.sender_name)
    if settings.backend == "outbox":
        if settings.outbox is None:
            raise ValueError("[mail] backend = 'outbox' needs an outbox path")
        return OutboxMailer(settings.sender, Outbox(settings.outbox), settings.sender_name)
    if settings.backend == "smtp":
        if settings.smtp is None:
            raise ValueError("[mail] backend = 'smtp' needs a [mail.smtp] table")
        return SmtpMailer(settings.sender, settings.smtp, settings.sender_name)
    raise ValueError(f"unknown [mail] backend {settings.backend!r}")
