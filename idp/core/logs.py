"""Logging set up at start-up: INFO by default, one line per event, text or JSON lines.

Python leaves the ``idp`` loggers at WARNING with no handler, so without this
every ``log.info`` (the audit lines included) would be dropped. :func:`configure`
installs one handler on the root logger (standard error, which is gunicorn's
error log) with the ``[logging]`` table's level and format, and
:func:`init_app` gives every request an id:

* taken from ``X-Request-ID`` when a trusted proxy sends one
  (``provider.trusted_proxies`` > 0) and it looks like an id, else generated;
  returned in the response's ``X-Request-ID``;
* added to every line logged while the request runs, with the client id when
  one is known (the request's ``client_id`` parameter, the client Authlib
  authenticated, or the one an audit record names).

Each request ends with one access line: method, the *route* (``/recovery/reset/<token>``,
never the URL: no query string, no code or token from a path), status and
duration. Werkzeug's own access lines (``idp serve``), which carry full URLs,
are switched off. Lines never carry secrets; that rule is kept by the code
that logs (see ``idp.core.audit``) and checked by ``tests/ops/test_logs.py``.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from dataclasses import dataclass

from authlib.integrations.flask_oauth2 import client_authenticated
from flask import Flask, g, has_request_context, request

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{8,128}")
_MARK = "_idp_handler"

access_log = logging.getLogger("idp.access")


@dataclass(frozen=True)
class LoggingSettings:
    """The ``[logging]`` table (every key optional)."""

    level: str = "INFO"
    format: str = "text"

    @classmethod
    def from_table(cls, t) -> LoggingSettings:
        d = cls()
        level = t.str("level", d.level, choices=LEVELS)
        fmt = t.str("format", d.format, choices=FORMATS)
        t.finish()
        return cls(level=level or d.level, format=fmt or d.format)


class _Stderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (gunicorn's, or a test's capture)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _RequestContext(logging.Filter):
    """Adds ``request_id`` and ``client_id`` to every record logged during a request."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = "-"
        record.client_id = "-"
        if has_request_context():
            record.request_id = g.get("request_id", "-")
            record.client_id = g.get("client_id") or _client_param() or "-"
        return True


def _client_param() -> str | None:
    value = request.args.get("client_id")
    return value[:64] if value and value.isprintable() else None


def _one_line(text: str) -> str:
    """One event, one line: newlines (tracebacks, user input) are escaped."""
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n")


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s client=%(client_id)s] %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        return _one_line(super().format(record))

    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802 (logging's name)
        return _utc(record.created)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
            "client_id": getattr(record, "client_id", "-"),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"))


def _utc(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def configure(settings: LoggingSettings) -> None:
    """Install (or replace) the provider's handler on the root logger."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
    handler = _Stderr()
    setattr(handler, _MARK, True)
    handler.addFilter(_RequestContext())
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    root.addHandler(handler)
    if root.level > logging.WARNING or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)  # libraries: warnings and errors
    for name in ("idp", "connectors"):
        logging.getLogger(name).setLevel(settings.level)
    # Werkzeug's development-server access lines carry full URLs (codes in query strings).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def init_app(app: Flask) -> None:
    trust_header = app.extensions["idp.settings"].trusted_proxies > 0

    @app.before_request
    def _start():
        g.request_started = time.monotonic()
        given = request.headers.get(REQUEST_ID_HEADER, "") if trust_header else ""
        g.request_id = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(16)

    @app.after_request
    def _finish(response):
        response.headers[REQUEST_ID_HEADER] = g.get("request_id", "-")
        started = g.get("request_started")
        rule = request.url_rule.rule if request.url_rule is not None else "<no route>"
        access_log.info(
            "%s %s %s %.1fms",
            request.method,
            rule,
            response.status_code,
            (time.monotonic() - started) * 1000 if started else 0.0,
        )
        return response

    client_authenticated.connect(_client_authenticated)  # the same receiver: connected once


def _client_authenticated(_sender, client=None, **_kw) -> None:
    if client is not None and has_request_context():
        g.client_id = client.get_client_id()
