"""The audit trail: every security event as a database record and a log line.

Records carry the event, outcome, account, client, method and IP, and a small
``detail`` dict; never passwords, codes, tokens or national register numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, has_request_context, request

from idp.core import metrics
from idp.core.storage import AuditEvent, db

log = logging.getLogger("idp.audit")

_FORBIDDEN = ("password", "code", "token", "secret", "national", "otp", "pin", "signature")


def record(
    event: str,
    outcome: str = "success",
    *,
    account_id: int | None = None,
    client_id: str | None = None,
    method: str | None = None,
    commit: bool = True,
    **detail: Any,
) -> None:
    for key in detail:
        if any(word in key.lower() for word in _FORBIDDEN):
            raise ValueError(f"audit detail {key!r} looks like a secret")
    ip = None
    if has_request_context():
        ip = request.remote_addr
        if client_id:
            g.client_id = client_id  # the request's later log lines name it too
    db.session.add(
        AuditEvent(
            event=event,
            outcome=outcome,
            account_id=account_id,
            client_id=client_id,
            method=method,
            ip=ip,
            detail=detail or None,
        )
    )
    if commit:
        db.session.commit()
    metrics.audit_event(event, outcome, method, detail.get("reason"))
    log.info(
        "event=%s outcome=%s account=%s client=%s method=%s ip=%s %s",
        event,
        outcome,
        account_id,
        client_id,
        method,
        ip,
        " ".join(f"{k}={v}" for k, v in detail.items()),
    )


def init_app(app: Flask) -> None:
    app.extensions["idp.audit"] = record
