"""The UserInfo endpoint (OpenID Connect Core 5.3) with RFC 6750 bearer errors.

GET or POST with ``Authorization: Bearer``; the access token must be one of
ours (``typ: at+jwt``, RFC 9068), unexpired, and its grant not revoked. A
DPoP-bound token (``cnf.jkt``) needs ``Authorization: DPoP`` and a proof of
its key for this request (RFC 9449 section 7); without it, 401.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, jsonify, request

from idp.oidc import dpop
from idp.oidc.claims import userinfo_claims
from idp.oidc.tokens import access_token_subject

bp = Blueprint("userinfo", __name__)


def bearer_error(error: str | None, description: str | None, status: int):
    value = 'Bearer realm="userinfo"'
    if error:
        value += f', error="{error}", error_description="{description}"'
    body = {"error": error, "error_description": description} if error else {"error": "invalid_request"}
    return jsonify(body), status, {"WWW-Authenticate": value, "Cache-Control": "no-store"}


def dpop_error(exc: dpop.DPoPError):
    """RFC 9449 section 7.1: the DPoP challenge, with the algorithms we accept."""
    algs = " ".join(dpop.ALGORITHMS)
    value = f'DPoP algs="{algs}", error="{exc.error}", error_description="{exc.description}"'
    body = {"error": exc.error, "error_description": exc.description}
    return jsonify(body), exc.status_code, {"WWW-Authenticate": value, "Cache-Control": "no-store"}


def presented_token() -> tuple[str, str | None]:
    """The access token and how it came: (``bearer`` | ``dpop``, token)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return "bearer", header[7:].strip() or None
    if header[:5].lower() == "dpop ":
        return "dpop", header[5:].strip() or None
    if request.method == "POST" and request.mimetype == "application/x-www-form-urlencoded":
        return "bearer", request.form.get("access_token") or None  # RFC 6750 section 2.2
    return "bearer", None


@bp.route("/userinfo", methods=["GET", "POST"])
def userinfo():
    scheme, token = presented_token()
    if token is None:
        return bearer_error(None, None, 401)
    try:
        claims = current_app.extensions["idp.keys"].verify(token, typ="at+jwt")
    except Exception:  # noqa: BLE001 - any failure: not a token of ours
        return bearer_error("invalid_token", "The access token is not valid.", 401)
    now = int(time.time())
    if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
        return bearer_error("invalid_token", "The access token expired.", 401)
    try:
        issuer = current_app.extensions["idp.settings"].issuer
        dpop.resource_key(claims, scheme, token, issuer + "/userinfo")
    except dpop.DPoPError as exc:
        return dpop_error(exc)
    live = access_token_subject(claims)
    if live is None:
        return bearer_error("invalid_token", "The access token was revoked.", 401)
    grant, account = live
    # The token's own scope: a refresh may have narrowed it below the grant's.
    granted = set((grant.scope or "").split())
    scope = " ".join(s for s in str(claims.get("scope") or "").split() if s in granted)
    if "openid" not in scope.split():
        return bearer_error("insufficient_scope", "The openid scope is required.", 403)
    if account.status != "active":
        return bearer_error("invalid_token", "The account is no longer active.", 401)
    client = current_app.extensions["idp.clients"].get(grant.client_id)
    response = jsonify(userinfo_claims(account, scope, grant.claims, client.settings if client else None))
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
