"""OpenID Connect provider: one account and one login for every relying party.

Only :func:`create_app` builds an application; nothing reads configuration or
the environment at import time. The sub-packages, from the ground up: ``core``,
``services``, ``accounts``, ``login``, ``oidc``, ``selfservice``; ``cli`` and
``demo`` sit on top (see ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

from idp import config, demo
from idp.accounts import customers, passwords
from idp.core import (
    audit,
    branding,
    errors,
    health,
    i18n,
    inputs,
    kv,
    logs,
    metrics,
    security,
    sessions,
    storage,
)
from idp.core.hashing import session_key
from idp.core.settings import Settings
from idp.login import actions, eid, first_number, itsme, mock, passkey, password, second_factor
from idp.oidc import authorize, clients, discovery, keys, logout, par, server, token, userinfo
from idp.selfservice import account, activation, contract_login, my_data, passkeys, recovery, registration
from idp.services import backends, queue

log = logging.getLogger(__name__)

# Every part plugs itself in with init_app(app), in this order: what a part needs from
# app.extensions is set up by a part above it.
PARTS = (
    logs,
    storage,
    health,
    metrics,
    inputs,
    kv,
    clients,
    keys,
    backends,
    passwords,
    sessions,
    security,
    i18n,
    branding,
    errors,
    server,
    audit,
    discovery,
    authorize,
    par,
    password,
    second_factor,
    first_number,
    actions,
    eid,
    itsme,
    mock,
    passkey,
    token,
    userinfo,
    logout,
    account,
    passkeys,
    my_data,
    demo,
    customers,
    registration,
    recovery,
    activation,
    contract_login,
    queue,
)


def create_app(
    config_path: str | None = None,
    overrides: dict[str, Any] | None = None,
    instance_dir: str | None = None,
    default_issuer: str | None = None,
) -> Flask:
    """Build the provider from its configuration file (``IDP_CONFIG`` when not given).

    ``overrides`` replaces top-level tables of the file (tests use it); ``default_issuer`` is
    the issuer when the configuration sets none (``idp serve --host/--port``).
    """
    settings = config.load(
        config_path or os.environ.get("IDP_CONFIG") or None, overrides, None, instance_dir, default_issuer
    )
    logs.configure(settings.sections["logging"])
    if settings.demo_enabled:
        settings = demo.with_demo_client(settings)
    app = _flask_app(settings)
    for part in PARTS:
        part.init_app(app)
    security.exempt_protocol_endpoints(app)
    if not settings.production:
        _start_development(app)
    return app


def _flask_app(settings: Settings) -> Flask:
    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.config.update(
        SECRET_KEY=session_key(settings.secret_key, settings.session_key_version),
        SESSION_COOKIE_SECURE=settings.production,
        PREFERRED_URL_SCHEME="https" if settings.production else "http",
        WTF_CSRF_TIME_LIMIT=settings.login_transaction_ttl,
        # Pages send Referrer-Policy: no-referrer, so browsers send no Referer for Flask-WTF's
        # https Referer check to read; forms are protected by the session-bound CSRF token and
        # SameSite=Lax cookies instead.
        WTF_CSRF_SSL_STRICT=False,
        MAX_CONTENT_LENGTH=256 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["idp.settings"] = settings
    return app


def _start_development(app: Flask) -> None:
    """The embedded default migrates itself and makes its first signing key."""
    settings = app.extensions["idp.settings"]
    storage.upgrade(app)
    with app.app_context():
        app.extensions["idp.keys"].ensure_key()
    log.warning(
        "DEVELOPMENT MODE (%s): development backends and generated secrets in %s; never use in production",
        settings.source,
        settings.instance_dir,
    )
