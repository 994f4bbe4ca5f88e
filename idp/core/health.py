"""Liveness and readiness for load balancers and orchestrators.

``GET /healthz`` says the process answers and touches nothing else.
``GET /readyz`` runs every registered readiness check and answers 200 when
all pass, 503 when one fails, with a JSON body naming each check. Checks are
a small registry (name -> callable): a feature that can make the provider
unfit to serve registers its own with :func:`add_check`. The built-in ones
are the database (reachable and migrated to the newest revision) and the
shared store (reachable); the OpenID layer adds the signing key.

Neither endpoint opens a browser session or is rate limited, and the body
never carries an error message (which could name hosts or users): a failing
check says only ``"ok": false`` and a fixed reason; the exception is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, jsonify

from idp.core.sessions import sessionless
from idp.core.storage import migration_state

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

Check = Callable[[Flask], str | None]  # None when fine, else a short fixed reason


def add_check(app: Flask, name: str, check: Check) -> None:
    """Register a readiness check; it returns None or a short reason, or raises."""
    app.extensions.setdefault("idp.readiness", {})[name] = check


def _database(app: Flask) -> str | None:
    current, heads = migration_state(app)
    if current != heads:
        return "not migrated to the newest revision (run idp db upgrade)"
    return None


def _shared_store(app: Flask) -> str | None:
    app.extensions["idp.kv"].get("readyz")  # one round trip; raises when unreachable
    return None


def run_checks(app: Flask) -> dict[str, dict]:
    results = {}
    for name, check in app.extensions.get("idp.readiness", {}).items():
        started = time.monotonic()
        try:
            reason = check(app)
        except Exception as exc:  # any failure means not ready; details go to the log only
            log.warning("readiness check %s failed: %s", name, type(exc).__name__, exc_info=True)
            reason = "unreachable or failing (see the log)"
        result: dict = {"ok": reason is None, "ms": round((time.monotonic() - started) * 1000, 1)}
        if reason is not None:
            result["reason"] = reason
        results[name] = result
    return results


@bp.get("/healthz")
def healthz():
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz():
    app = current_app._get_current_object()
    checks = run_checks(app)
    ready = all(c["ok"] for c in checks.values())
    return jsonify(status="ok" if ready else "fail", checks=checks), 200 if ready else 503


def _shared_store_durable(app: Flask) -> str | None:
    """Production: the SMS caps, replay caches and the revoked-token deny-list live in Redis and
    must survive its restart, so Redis runs with its append-only file (docs/operator-guide.md,
    "When a dependency fails")."""
    if app.extensions["idp.kv"].durable():
        return None
    return "Redis keeps no append-only file (appendonly yes): a restart would lose SMS caps and deny-lists"


def init_app(app: Flask) -> None:
    add_check(app, "database", _database)
    add_check(app, "shared_store", _shared_store)
    if app.extensions["idp.settings"].production:
        add_check(app, "shared_store_persistence", _shared_store_durable)
    app.register_blueprint(bp)
    sessionless(app, "/healthz", "/readyz")
