"""The durable outbound queue: SMS and e-mails leave the request path.

A request records the message (:func:`enqueue`, a row in ``outbound_messages``
committed with the request's own changes) and answers at once; a worker
(:func:`work`, run by ``idp worker``, by ``idp serve`` and, in the embedded
default, by a thread of the web process) sends it with retries, exponential
backoff and an idempotency key, so request time never depends on a gateway's
speed or on whether an account exists.

Why a table in our own database, through SQLAlchemy, rather than a task-queue
library: the maintained PostgreSQL queues (procrastinate, pgqueuer) run on
PostgreSQL only, huey stores in Redis or SQLite only, and rq, dramatiq and
Celery keep messages in Redis or RabbitMQ, a second store that loses them
unless configured for persistence. One table runs on SQLite (embedded) and
PostgreSQL (production) alike, commits atomically with the change that causes
the message (the transactional-outbox pattern), survives restarts, and needs
no new service. Claiming a message is one ``UPDATE … WHERE status = 'pending'``
(or an expired lease), so several workers never send one message twice.

* A message has an idempotency ``key`` (unique; the SMS gateway receives it as
  ``Idempotency-Key``), a ``channel`` (``sms`` or ``email``), a payload, and a
  ``release`` list of shared-store counters to give back if it is never sent
  (a failed SMS does not use up the account's, the number's or the global caps).
* Outcomes: ``sent``; a permanent refusal (gateway 4xx, bad address) is
  ``failed`` at once; a temporary one (timeout, 5xx, SMTP down) is retried
  after ``backoff * 2**(attempts-1)`` seconds up to ``max_attempts`` tries or
  until the message's ``expires_at`` (a one-time code past its lifetime is not
  worth sending), then ``failed``. The payload (which may hold a one-time code
  or a link) is erased once the message is sent or failed.
* :func:`health` tells monitoring whether the queue is stuck.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import JSON, BigInteger, Integer, String, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from connectors.config import ConfigTable
from idp.core import audit
from idp.core import health as core_health
from idp.core.kv import StoreUnavailable
from idp.core.phones import mask_phone
from idp.core.storage import db
from idp.services.mail import EmailMessage, MailDeliveryError, recipient_domain
from idp.services.sms import SmsDeliveryError

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"


@dataclass(frozen=True)
class QueueSettings:
    """The ``[outbound]`` table (every key optional)."""

    worker: str = "thread"  # "thread": a thread of the web process; "external": `idp worker`
    max_attempts: int = 6
    backoff: int = 5  # seconds before the second try; doubles at each try
    lease: int = 60  # a claimed message whose worker died is taken again after this
    poll: float = 1.0
    stuck_after: int = 300  # health(): the oldest pending message older than this is "stuck"

    @classmethod
    def from_table(cls, t: ConfigTable) -> QueueSettings:
        d = cls()
        worker = t.str("worker", d.worker)
        if worker not in ("thread", "external"):
            t.error("worker", 'must be "thread" or "external"')
        return cls(
            worker=worker,
            max_attempts=t.int("max_attempts", d.max_attempts, min=1, max=50),
            backoff=t.int("backoff", d.backoff, min=1, max=3600),
            lease=t.int("lease", d.lease, min=10, max=3600),
            poll=t.float("poll", d.poll, min=0.05, max=60),
            stuck_after=t.int("stuck_after", d.stuck_after, min=10, max=86400),
        )


class OutboundMessage(db.Model):
    __tablename__ = "outbound_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict] = mapped_column(JSON)
    release: Mapped[list] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(8), default=PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[int] = mapped_column(BigInteger, index=True)
    locked_until: Mapped[int] = mapped_column(BigInteger, default=0)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(200))


def settings() -> QueueSettings:
    return current_app.extensions["idp.settings"].sections.get("outbound") or QueueSettings()


def _now() -> int:
    return int(current_app.extensions.get("idp.clock", time.time)())


def enqueue(
    channel: str,
    recipient: str,
    payload: dict[str, Any],
    *,
    ttl: int = 86400,
    release: list[tuple[str, int]] | None = None,
    commit: bool = True,
) -> str:
    """Record a message to send; its key (for :func:`status`). ``release``: shared-store
    counters ``(key, ttl)`` to decrement if the message is never sent."""
    now = _now()
    key = secrets.token_urlsafe(24)
    db.session.add(
        OutboundMessage(
            key=key,
            channel=channel,
            recipient=recipient,
            payload=payload,
            release=[list(r) for r in release or []],
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            locked_until=0,
            expires_at=now + ttl,
            created_at=now,
        )
    )
    if commit:
        db.session.commit()
    wake(current_app._get_current_object())
    return key


def status(key: str | None) -> str | None:
    """``pending`` (also while being sent), ``sent``, ``failed``, or None for an unknown key."""
    if not key:
        return None
    value = db.session.scalar(select(OutboundMessage.status).where(OutboundMessage.key == key))
    return PENDING if value == SENDING else value


# ---------------------------------------------------------------------------
# The worker
# ---------------------------------------------------------------------------


def _claim(row_id: int, now: int, lease: int) -> bool:
    claimed = db.session.execute(
        update(OutboundMessage)
        .where(
            OutboundMessage.id == row_id,
            or_(
                (OutboundMessage.status == PENDING) & (OutboundMessage.next_attempt_at <= now),
                (OutboundMessage.status == SENDING) & (OutboundMessage.locked_until < now),
            ),
        )
        .values(status=SENDING, locked_until=now + lease, attempts=OutboundMessage.attempts + 1)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _deliver(app: Flask, message: OutboundMessage) -> None:
    payload = message.payload
    if message.channel == "sms":
        app.extensions["idp.sms"].send(message.recipient, payload["text"], key=message.key)
    elif message.channel == "email":
        app.extensions["idp.mail"].send(
            EmailMessage(
                to=message.recipient, subject=payload["subject"], text=payload["text"], html=payload["html"]
            )
        )
    else:
        raise ValueError(f"unknown channel {message.channel!r}")


def _finish(app: Flask, message: OutboundMessage, outcome: str, error: str | None, now: int) -> None:
    message.status = outcome
    message.finished_at = now
    message.payload = {}
    message.last_error = error
    db.session.commit()
    if outcome == FAILED:
        to = (
            mask_phone(message.recipient) if message.channel == "sms" else recipient_domain(message.recipient)
        )
        reason = "gateway_" + (error or "error").split(":", 1)[0]
        audit.record("message_send_failed", "failure", channel=message.channel, reason=reason, to=to)
        kv = app.extensions["idp.kv"]
        for key, ttl in message.release or []:
            try:
                kv.incr(key, int(ttl), -1)
            except StoreUnavailable:
                log.warning("outbound %s: could not give back counter %s", message.key, key)


def process(app: Flask, message: OutboundMessage, s: QueueSettings, now: int) -> str:
    """One try at one claimed message; its new status."""
    try:
        _deliver(app, message)
    except (SmsDeliveryError, MailDeliveryError) as exc:
        permanent = exc.code == "refused"
        error = f"{exc.code}: {exc.detail}"[:200]
    except Exception as exc:  # a bug or an unforeseen library error: retried, logged
        log.exception("outbound %s: unexpected error", message.key)
        permanent, error = False, type(exc).__name__
    else:
        _finish(app, message, SENT, None, now)
        return SENT
    out_of_time = now + s.backoff * 2 ** (message.attempts - 1) >= message.expires_at
    if permanent or message.attempts >= s.max_attempts or out_of_time:
        log.warning(
            "outbound %s (%s): failed after %d tries: %s",
            message.key,
            message.channel,
            message.attempts,
            error,
        )
        _finish(app, message, FAILED, error, now)
        return FAILED
    message.status = PENDING
    message.next_attempt_at = now + s.backoff * 2 ** (message.attempts - 1)
    message.last_error = error
    db.session.commit()
    return PENDING


def work(app: Flask, limit: int = 50) -> int:
    """Send what is due now (one pass); how many messages were tried. Needs an app context."""
    s = settings()
    now = _now()
    due = db.session.scalars(
        select(OutboundMessage.id)
        .where(
            or_(
                (OutboundMessage.status == PENDING) & (OutboundMessage.next_attempt_at <= now),
                (OutboundMessage.status == SENDING) & (OutboundMessage.locked_until < now),
            )
        )
        .order_by(OutboundMessage.next_attempt_at)
        .limit(limit)
    ).all()
    db.session.commit()
    tried = 0
    for row_id in due:
        if not _claim(row_id, now, s.lease):
            continue  # another worker has it
        message = db.session.get(OutboundMessage, row_id)
        process(app, message, s, _now())
        tried += 1
    return tried


def run(app: Flask, stop: threading.Event, wakeup: threading.Event | None = None) -> None:
    """Work until ``stop`` is set: a pass, then wait ``poll`` seconds or until woken."""
    with app.app_context():
        s = settings()
        while not stop.is_set():
            try:
                work(app)
            except Exception:  # the database may be down: keep going, it comes back
                log.exception("outbound worker pass failed")
                db.session.rollback()
            finally:
                db.session.remove()
            if wakeup is not None:
                wakeup.wait(s.poll)
                wakeup.clear()
            else:
                stop.wait(s.poll)


class _Thread:
    """The in-process worker of the embedded default: one thread per process, started at the
    first message (so after a fork), woken by each :func:`enqueue`."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.stop = threading.Event()
        self.wakeup = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def wake(self) -> None:
        with self.lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=run, args=(self.app, self.stop, self.wakeup), name="idp-outbound", daemon=True
                )
                self.thread.start()
        self.wakeup.set()

    def close(self) -> None:
        self.stop.set()
        self.wakeup.set()
        if self.thread is not None:
            self.thread.join(10)


def start_thread(app: Flask) -> None:
    """Run the in-process worker now (``idp serve`` does, whatever ``[outbound] worker`` says)."""
    worker = app.extensions.setdefault("idp.outbound_thread", _Thread(app))
    worker.wake()


def wake(app: Flask) -> None:
    worker = app.extensions.get("idp.outbound_thread")
    if worker is not None:
        worker.wake()


# ---------------------------------------------------------------------------
# Health
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueHealth:
    pending: int  # waiting or being sent
    oldest_pending_age: int | None  # seconds since the oldest of them was queued
    failed_last_hour: int  # given up in the last hour
    stuck: bool  # the oldest pending message is older than [outbound] stuck_after


def health() -> QueueHealth:
    """Whether the outbound queue is stuck, for readiness checks and metrics (needs an app context).

    ``stuck`` is true when a message has waited more than ``[outbound] stuck_after``
    seconds (default 300): no worker runs, or the gateway has been down that long.
    ``failed_last_hour`` counts messages given up on (gateway refusals, outages longer
    than the retries). One indexed query each; safe to call on every probe.
    """
    now = _now()
    pending, oldest = db.session.execute(
        select(func.count(), func.min(OutboundMessage.created_at)).where(
            OutboundMessage.status.in_((PENDING, SENDING))
        )
    ).one()
    failed = db.session.scalar(
        select(func.count()).where(
            OutboundMessage.status == FAILED, OutboundMessage.finished_at >= now - 3600
        )
    )
    age = None if oldest is None else max(0, now - int(oldest))
    return QueueHealth(
        pending=int(pending),
        oldest_pending_age=age,
        failed_last_hour=int(failed or 0),
        stuck=age is not None and age > settings().stuck_after,
    )


def _ready(app: Flask) -> str | None:
    """Readiness (``/readyz``): the outbound queue is not stuck."""
    with app.app_context():
        state = health()
    if state.stuck:
        return f"a message has waited {state.oldest_pending_age} s: no worker runs, or the gateway is down"
    return None


def init_app(app: Flask) -> None:
    core_health.add_check(app, "outbound_queue", _ready)
    s = app.extensions["idp.settings"].sections.get("outbound") or QueueSettings()
    if s.worker == "thread":
        app.extensions["idp.outbound_thread"] = _Thread(app)
