"""When the browser's SSO session is good enough for an authorization request, and when a
login or consent is needed (OpenID Connect Core 3.1.2.1: ``prompt``, ``max_age``,
``acr_values``, the ``acr`` claim, ``id_token_hint``), given what each client allows.
"""

from __future__ import annotations

import time

from flask import (
    current_app,
)

from connectors.base import level_rank
from idp.core.storage import Consent, db
from idp.oidc import claims as claims_mod


def required_level_for(client, params: dict[str, str], claims_request: dict | None) -> str:
    """The assurance level this request needs: the client's minimum or the lowest asked for."""
    settings = current_app.extensions["idp.settings"]
    required = client.settings.min_level
    asked = [settings.level_for_acr(v) for v in (params.get("acr_values") or "").split()]
    asked += [settings.level_for_acr(v) for v in claims_mod.requested_acr(claims_request)]
    asked = [a for a in asked if a]
    if asked:
        lowest_acceptable = min(asked, key=level_rank)
        if level_rank(lowest_acceptable) > level_rank(required):
            required = lowest_acceptable
    return required


def reachable(client, level: str) -> bool:
    """Can a login with a method offered to this client reach ``level``?"""
    settings = current_app.extensions["idp.settings"]
    best = max(
        (
            settings.method_level(m, client.settings)
            for m in client.settings.methods
            if settings.methods[m].enabled
        ),
        key=level_rank,
        default=None,
    )
    return best is not None and level_rank(best) >= level_rank(level)


def login_reason(sso, client, params, prompts, required_level, tx) -> str | None:
    """Why a (new) login is needed, or None when the SSO session will do."""
    if sso is None:
        return "no_session"
    row, account = sso
    logged_in_for_this = tx is not None and tx.get("login_at") and row.auth_time >= tx["login_at"] - 5
    if "login" in prompts and not logged_in_for_this:
        return "prompt_login"
    if (
        "max_age" in params
        and int(time.time()) - row.auth_time > int(params["max_age"])
        and not logged_in_for_this
    ):
        return "max_age"
    level = current_app.extensions["idp.settings"].session_level(row.level, row.methods, client.settings)
    if level is None or level_rank(level) < level_rank(required_level):
        return "step_up"
    if not set(row.methods) & set(client.settings.methods):
        return "method_not_allowed"
    hint = params.get("id_token_hint")
    if hint:
        claims = current_app.extensions["idp.keys"].verify_hint(hint)
        if not claims_mod.is_subject_of(claims, account):
            return "other_user"
    return None


def needs_consent(client, account_id: int, scope: str, prompts: set[str], tx: dict | None) -> bool:
    if client.settings.first_party:
        return False
    if tx is not None and tx.get("consented"):
        return False
    if "consent" in prompts:
        return True
    row = db.session.get(Consent, (account_id, client.client_id))
    return row is None or not set(scope.split()) <= set(row.scope.split())
