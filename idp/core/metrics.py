"""Prometheus metrics at ``/metrics``, summed over every gunicorn worker.

The metric objects below are ``prometheus_client``'s, defined once per
process; feature code calls the small functions of this module
(:func:`login_started`, :func:`message`, :func:`upstream` ...) and never
touches ``prometheus_client`` itself. With ``PROMETHEUS_MULTIPROC_DIR`` set
(gunicorn, see ``idp/gunicorn_conf.py``) each worker writes its counters to
files in that folder and a scrape of any worker adds them all up
(prometheus_client's multi-process mode); without it (``idp serve``, tests)
the process's own registry is served.

Values that are a state rather than a count (active SSO sessions, the SMS
budget used today) are read when scraped, from the database or the shared
store, through gauges registered with :func:`add_gauge`; they are the same
whichever worker answers.

``/metrics`` answers only a client address in ``[metrics] allowed_networks``
or a request bearing ``[metrics] token`` (``Authorization: Bearer ...``);
with neither configured it does not exist (404).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import requests
from flask import Blueprint, Flask, Response, abort, current_app, g, request
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import func, select

from idp.core.sessions import sessionless
from idp.core.storage import SsoSession, db

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

HTTP_REQUESTS = Counter(
    "idp_http_requests_total",
    "HTTP requests answered, by route, method and status.",
    ["endpoint", "method", "status"],
)
HTTP_DURATION = Histogram(
    "idp_http_request_duration_seconds",
    "Time to answer an HTTP request, by route.",
    ["endpoint", "method"],
    buckets=_LATENCY,
)
LOGINS_STARTED = Counter("idp_logins_started_total", "Login attempts begun, by method.", ["method"])
LOGINS_COMPLETED = Counter("idp_logins_completed_total", "Logins completed, by method.", ["method"])
LOGINS_FAILED = Counter(
    "idp_logins_failed_total", "Logins refused, by method and reason.", ["method", "reason"]
)
MESSAGES = Counter(
    "idp_messages_total",
    "SMS and e-mails, by channel and outcome (queued, sent, failed).",
    ["channel", "outcome"],
)
UPSTREAM_DURATION = Histogram(
    "idp_upstream_request_duration_seconds",
    "Calls to an upstream service, by upstream.",
    ["upstream"],
    buckets=_LATENCY,
)
UPSTREAM_ERRORS = Counter(
    "idp_upstream_errors_total", "Upstream calls that failed (no answer or a 5xx), by upstream.", ["upstream"]
)
TOKENS_ISSUED = Counter("idp_tokens_issued_total", "Token responses issued, by grant type.", ["grant_type"])

# The second factors' failed checks count as failed logins of these methods.
_SECOND_FACTOR_EVENTS = {"code_check": "sms", "totp_check": "totp"}


@dataclass(frozen=True)
class MetricsSettings:
    """The ``[metrics]`` table: who may read ``/metrics``."""

    allowed_networks: tuple[str, ...] = ()
    token: str | None = None

    @classmethod
    def from_table(cls, t) -> MetricsSettings:
        networks = t.list("allowed_networks", [])
        for i, net in enumerate(networks or []):
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                t.error(f"allowed_networks[{i}]", f"{net!r} is not an IP network such as 10.0.0.0/8")
        token = t.secret("token", None)
        if token is not None and len(token) < 32:
            t.error("token", "must be at least 32 characters of high-entropy random data")
        t.finish()
        return cls(allowed_networks=tuple(networks or ()), token=token)

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_networks or self.token)


# -- hooks called by feature code -------------------------------------------------------


def login_started(method: str) -> None:
    LOGINS_STARTED.labels(method).inc()


def audit_event(event: str, outcome: str, method: str | None, reason: object) -> None:
    """Logins completed and failed, as the audit trail records them (``idp.core.audit``)."""
    if event == "login":
        if outcome == "success":
            LOGINS_COMPLETED.labels(method or "unknown").inc()
        else:
            LOGINS_FAILED.labels(method or "unknown", str(reason or "unknown")[:40]).inc()
    elif event in _SECOND_FACTOR_EVENTS and outcome == "failure":
        LOGINS_FAILED.labels(_SECOND_FACTOR_EVENTS[event], str(reason or "wrong_code")[:40]).inc()


def message(channel: str, outcome: str) -> None:
    """An SMS or e-mail ``queued``, ``sent`` or ``failed``."""
    MESSAGES.labels(channel, outcome).inc()


def token_issued(grant_type: str | None) -> None:
    TOKENS_ISSUED.labels(grant_type or "unknown").inc()


@contextmanager
def upstream(name: str) -> Iterator[None]:
    """Time a call to an upstream service; an exception counts as an error."""
    started = time.monotonic()
    try:
        yield
    except Exception:
        UPSTREAM_ERRORS.labels(name).inc()
        raise
    finally:
        UPSTREAM_DURATION.labels(name).observe(time.monotonic() - started)


class UpstreamSession(requests.Session):
    """A ``requests`` session that times every call to one upstream (itsme, OCSP, SMS gateway)."""

    def __init__(self, upstream_name: str) -> None:
        super().__init__()
        self.upstream_name = upstream_name

    def request(self, method, url, *args, **kwargs):
        with upstream(self.upstream_name):
            response = super().request(method, url, *args, **kwargs)
        if response.status_code >= 500:
            UPSTREAM_ERRORS.labels(self.upstream_name).inc()
        return response


# -- scrape-time gauges -----------------------------------------------------------------

Gauge = Callable[[Flask], float]


def add_gauge(app: Flask, name: str, documentation: str, read: Gauge) -> None:
    """A value read when ``/metrics`` is scraped (a state, the same whichever worker answers)."""
    app.extensions.setdefault("idp.metrics.gauges", {})[name] = (documentation, read)


def _active_sso_sessions(app: Flask) -> float:
    now = int(time.time())
    return db.session.scalar(
        select(func.count())
        .select_from(SsoSession)
        .where(SsoSession.ended_at.is_(None), SsoSession.expires_at > now)
    )


class _Gauges:
    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self):
        for name, (documentation, read) in self.app.extensions.get("idp.metrics.gauges", {}).items():
            try:
                value = float(read(self.app))
            except Exception:  # a store that is down must not break the scrape of the counters
                log.warning("metrics: gauge %s could not be read", name, exc_info=True)
                continue
            family = GaugeMetricFamily(name, documentation)
            family.add_metric([], value)
            yield family


# -- the endpoint -----------------------------------------------------------------------


def _allowed(settings: MetricsSettings) -> bool:
    if settings.token:
        given = request.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), settings.token.encode()):
            return True
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in settings.allowed_networks)


@bp.get("/metrics")
def metrics():
    app = current_app._get_current_object()
    settings: MetricsSettings = app.extensions["idp.settings"].sections["metrics"]
    if not settings.enabled:
        abort(404)
    if not _allowed(settings):
        return Response("forbidden\n", 403, {"WWW-Authenticate": "Bearer", "Content-Type": "text/plain"})
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counters = CollectorRegistry()
        MultiProcessCollector(counters)
    else:
        counters = PROCESS_REGISTRY
    state = CollectorRegistry(auto_describe=False)
    state.register(_Gauges(app))
    return Response(
        generate_latest(counters) + generate_latest(state), 200, {"Content-Type": CONTENT_TYPE_LATEST}
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    sessionless(app, "/metrics")
    add_gauge(app, "idp_sso_sessions_active", "SSO sessions neither ended nor expired.", _active_sso_sessions)

    @app.before_request
    def _start():
        g.metrics_started = time.monotonic()

    @app.after_request
    def _count(response):
        endpoint = request.url_rule.rule if request.url_rule is not None else "<no route>"
        HTTP_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        started = g.get("metrics_started")
        if started is not None:
            HTTP_DURATION.labels(endpoint, request.method).observe(time.monotonic() - started)
        return response
