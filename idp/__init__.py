"""OpenID Connect provider: one account and one login for every relying party.

Only :func:`create_app` builds an application; nothing reads configuration or
the environment at import time.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)


def create_app(
    config_path: str | None = None, overrides: dict[str, Any] | None = None, instance_dir: str | None = None
) -> Flask:
    """Build the provider from its configuration file (``IDP_CONFIG`` when not given).

    ``overrides`` replaces top-level tables of the file (tests use it).
    """
    from idp import demo
    from idp.accounts import customers
    from idp.core import audit, errors, i18n, kv, security, sessions, storage
    from idp.core.settings import load_settings
    from idp.login import eid as eid_login
    from idp.login import itsme as itsme_login
    from idp.login import passkey as passkey_login
    from idp.login import password as login
    from idp.oidc import authorize, discovery, keys, logout, token, userinfo
    from idp.oidc import server as oauth
    from idp.oidc.clients import ClientRegistry
    from idp.selfservice import account, activation, recovery, registration
    from idp.selfservice import passkeys as account_passkeys
    from idp.services import backends as services

    path = config_path or os.environ.get("IDP_CONFIG") or None
    settings = load_settings(path, overrides=overrides, instance_dir=instance_dir)
    if settings.demo_enabled:
        settings = demo.with_demo_client(settings)
    if not settings.production and settings.issuer.startswith("http://"):
        # Authlib refuses plain http unless told: development issuers are http://127.0.0.1.
        os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

    app = Flask(__name__, instance_path=str(settings.instance_dir.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key,
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
    app.extensions["idp.kv"] = kv.open_store(settings.kv_url, prefix=settings.kv_prefix)
    app.extensions["idp.clients"] = ClientRegistry(settings.clients)
    app.extensions["idp.keys"] = keys.KeyRing(
        settings.keys_passphrase,
        settings.signing_algorithm,
        lifetime=max(settings.id_token_ttl, settings.access_token_ttl),
        issuer=settings.issuer,
    )
    if settings.trusted_proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(
            app.wsgi_app,
            x_for=settings.trusted_proxies,
            x_proto=settings.trusted_proxies,
            x_host=settings.trusted_proxies,
        )

    storage.init_app(app)
    services.init_app(app)
    sessions.init_app(app)
    security.init_app(app)
    i18n.init_app(app)
    errors.init_app(app)
    oauth.init_app(app)
    audit.init_app(app)
    for module in (
        discovery,
        authorize,
        login,
        eid_login,
        itsme_login,
        passkey_login,
        token,
        userinfo,
        logout,
        account,
        account_passkeys,
        demo,
        customers,
        registration,
        recovery,
        activation,
    ):
        module.init_app(app)
    security.exempt_protocol_endpoints(app)
    from idp import cli

    cli.init_app(app)

    if not settings.production:
        # The embedded default migrates itself and makes its first signing key.
        storage.upgrade(app)
        with app.app_context():
            app.extensions["idp.keys"].ensure_key()
        log.warning(
            "DEVELOPMENT MODE (%s): development backends and generated secrets in %s; "
            "never use in production",
            settings.source,
            settings.instance_dir,
        )
    return app
