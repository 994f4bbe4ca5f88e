"""Logout: RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.

Ending an SSO session ends it for every relying party that took part: each
one with a ``backchannel_logout_uri`` receives a signed logout token
(``typ: logout+jwt``, with ``sub`` and ``sid``, the back-channel event and no
nonce), and the session's refresh tokens stop working unless they were
granted for ``offline_access``.
"""

from __future__ import annotations

import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Blueprint, Flask, current_app, render_template, request, session
from flask_babel import gettext as _
from sqlalchemy import select

from idp.core import audit
from idp.core.sessions import current_sso, end_sso, session_ended
from idp.core.storage import Account, Grant, SessionClient, SsoSession, db
from idp.oidc.claims import is_subject_of, subject_for
from idp.oidc.server import revoke_grant

log = logging.getLogger(__name__)
bp = Blueprint("logout", __name__)

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return current_app.extensions["idp.keys"].verification_keys()

    def get_algorithms(self):
        return [current_app.extensions["idp.settings"].signing_algorithm]

    def _validate_id_token_hint(self, id_token_hint: str) -> dict:
        """Only an ID token we issued (RP-Initiated Logout 1.0 section 2), expired or not.

        Authlib checks the signature against our keys; we also require our
        issuer, the key's own algorithm and ``typ: JWT``, so an access token or
        a logout token signed by the same key is not taken for an ID token
        (RFC 8725 section 3.11).
        """
        try:
            claims = current_app.extensions["idp.keys"].verify_hint(id_token_hint)
        except Exception:  # noqa: BLE001 - any failure: not an ID token of ours
            raise InvalidRequestError("id_token_hint is not an ID token from this provider") from None
        if not isinstance(claims.get("sub"), str) or "aud" not in claims:
            raise InvalidRequestError("id_token_hint is not an ID token from this provider")
        return claims

    def end_session(self, end_session_request) -> None:
        sso = current_sso()
        if sso is not None:
            end_sso(sso[0], reason="rp_initiated_logout")
        session.clear()


def logout_token(client_id: str, sub: str, sid: str, extra_events: dict | None = None) -> str:
    settings = current_app.extensions["idp.settings"]
    now = int(time.time())
    claims = {
        "iss": settings.issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + 120,
        "jti": secrets.token_urlsafe(16),
        "sub": sub,
        "sid": sid,
        "events": {BACKCHANNEL_EVENT: {}, **(extra_events or {})},
    }
    return current_app.extensions["idp.keys"].sign(claims, typ="logout+jwt")


def post_logout_token(uri: str, token: str, timeout: float) -> str | None:
    try:
        resp = requests.post(uri, data={"logout_token": token}, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return type(exc).__name__
    return None if resp.status_code in (200, 204) else f"HTTP {resp.status_code}"


def _session_ended(app: Flask, sso: SsoSession, reason: str, extra_events: dict | None = None) -> None:
    """Listener of :data:`idp.core.sessions.session_ended`: revoke the session's grants (but
    ``offline_access`` ones) and send each participating RP its back-channel logout token."""
    row = sso
    settings = app.extensions["idp.settings"]
    clients = app.extensions["idp.clients"]
    account = db.session.get(Account, row.account_id)
    for grant in db.session.scalars(
        select(Grant).where(Grant.session_id == row.id, Grant.revoked_at.is_(None))
    ):
        if "offline_access" not in grant.scope.split():
            revoke_grant(grant.id, "logout")
    participants = [
        sc.client_id
        for sc in db.session.scalars(select(SessionClient).where(SessionClient.session_id == row.id))
    ]
    db.session.commit()
    jobs = []
    for client_id in participants:
        client = clients.get(client_id)
        if client is not None and client.settings.backchannel_logout_uri:
            jobs.append(
                (
                    client_id,
                    client.settings.backchannel_logout_uri,
                    logout_token(client_id, subject_for(client.settings, account), row.id, extra_events),
                )
            )
    if jobs:
        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            results = list(
                pool.map(lambda j: post_logout_token(j[1], j[2], settings.backchannel_logout_timeout), jobs)
            )
        for (client_id, _uri, _tok), problem in zip(jobs, results, strict=True):
            audit.record(
                "backchannel_logout",
                "failure" if problem else "success",
                account_id=account.id,
                client_id=client_id,
                commit=False,
                **({"problem": problem} if problem else {}),
            )
    audit.record(
        "logout", account_id=account.id if account else None, reason=reason, clients=len(participants)
    )


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    server = current_app.extensions["idp.oauth"]
    try:
        req = server.validate_endpoint_request("end_session")
    except OAuth2Error as exc:
        return render_template(
            "error.html",
            title=_("Logout"),
            message=_("This logout request is not valid: %(reason)s", reason=exc.description),
        ), 400
    client_id = request.values.get("client_id")
    if client_id and req.client is None:
        return render_template("error.html", title=_("Logout"), message=_("Unknown application.")), 400
    sso = current_sso()
    if req.id_token_claims and sso is not None and not is_subject_of(req.id_token_claims, sso[1]):
        # The hint names someone else than the person logged in on this browser: an
        # application must not end another person's session, nor be sent back to.
        return render_template(
            "error.html",
            title=_("Logout"),
            message=_("This logout request is for another account. You are still logged in."),
        ), 400
    if request.values.get("post_logout_redirect_uri") and not req.redirect_uri:
        # Not registered, altered, or without a hint to prove it: log out, never redirect.
        server.create_endpoint_response("end_session", req)
        return render_template("logout/done.html"), 200
    response = server.create_endpoint_response("end_session", req)
    if response is not None:
        response.status_code = 303
        return response
    return render_template("logout/done.html")


def init_app(app: Flask) -> None:
    app.extensions["idp.oauth"].register_endpoint(EndSession)
    session_ended.connect(_session_ended, app)
    app.register_blueprint(bp)
