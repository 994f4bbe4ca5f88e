"""What ending an SSO session means for the relying parties (Back-Channel Logout 1.0).

:func:`idp.core.sessions.end_sso` marks the session ended and sends
``sso_ended``; :func:`on_sso_ended` (connected by ``idp.oidc.logout``) then

* revokes every grant made in that browser session — their access tokens stop
  working at userinfo and introspection, their refresh tokens stop refreshing —
  except grants made with ``offline_access``, which outlive the session;
* POSTs a signed logout token (``typ: logout+jwt``, ``iss``, ``aud``, ``iat``,
  ``jti``, the back-channel event, ``sub`` and ``sid``, no ``nonce``; section
  2.4) to every RP of the session that registered a ``backchannel_logout_uri``.

The browser session keeps its ``sid`` across re-authentication (see
:func:`idp.core.sessions.start_sso`), so the ``sid`` of each logout token is the
one in the ID token that RP holds.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from flask import current_app
from sqlalchemy import select

from idp.core import audit
from idp.core.storage import Account, Grant, SessionClient, SsoSession, db
from idp.oidc.claims import subject_for
from idp.oidc.tokens import revoke_grant

BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


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


def revoke_session_grants(row: SsoSession) -> None:
    """Every grant of the session ends, except those made for ``offline_access``."""
    for grant in db.session.scalars(
        select(Grant).where(Grant.session_id == row.id, Grant.revoked_at.is_(None))
    ):
        if "offline_access" not in grant.scope.split():
            revoke_grant(grant.id, "logout")
    db.session.commit()


def on_sso_ended(sender, row: SsoSession, reason: str, extra_events: dict | None = None, **_extra) -> None:
    """Receiver of ``idp.core.sessions.sso_ended``: the session's grants, then its RPs."""
    revoke_session_grants(row)
    account = db.session.get(Account, row.account_id)
    participants = list(
        db.session.scalars(select(SessionClient.client_id).where(SessionClient.session_id == row.id))
    )
    notify_relying_parties(row, account, participants, extra_events)
    audit.record(
        "logout", account_id=account.id if account else None, reason=reason, clients=len(participants)
    )


def notify_relying_parties(
    row: SsoSession, account: Account | None, participants: list[str], extra_events: dict | None = None
) -> None:
    settings = current_app.extensions["idp.settings"]
    clients = current_app.extensions["idp.clients"]
    jobs = []
    for client_id in participants:
        client = clients.get(client_id)
        if account is not None and client is not None and client.settings.backchannel_logout_uri:
            token = logout_token(client_id, subject_for(client.settings, account), row.id, extra_events)
            jobs.append((client_id, client.settings.backchannel_logout_uri, token))
    if not jobs:
        return
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
