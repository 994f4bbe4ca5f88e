"""The authorization responses (OpenID Connect Core 3.1.2.5, 3.1.2.6) and the login
transaction an authorization request becomes while the person logs in.

The transaction itself is kept by :mod:`idp.login.transaction` (the login pages read it);
here it is made from the request's parameters. Every response to the client carries
``iss`` (RFC 9207), by query or ``form_post``.
"""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlencode

from flask import current_app, g, redirect, render_template
from flask_babel import gettext as _

from idp.core.security import allow_form_action

# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------


def respond(redirect_uri: str, params: list[tuple[str, str]], response_mode: str):
    """Deliver the authorization response (query or form_post), always with ``iss``."""
    params = [p for p in params if p[1] is not None] + [
        ("iss", current_app.extensions["idp.settings"].issuer)
    ]
    if response_mode == "form_post":
        allow_form_action(redirect_uri)
        return render_template("authorize/form_post.html", action=redirect_uri, params=params)
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + sep + urlencode(params), 302)


def error_page(message: str, status: int = 400):
    return render_template("error.html", title=_("This link cannot be used"), message=message), status


def new_transaction(params: dict[str, str], client, required_level: str) -> dict:
    settings = current_app.extensions["idp.settings"]
    methods = [m for m in client.settings.methods if m in settings.methods]
    return {
        "id": secrets.token_urlsafe(12),
        "created": int(time.time()),
        "params": params,
        "client_id": client.client_id,
        "required_level": required_level,
        "methods": methods,
        "login_hint": params.get("login_hint"),
        "ui_locale": g.get("ui_locale"),
    }
