"""The tokens the provider issues (OpenID Connect Core 2, RFC 9068) and how they end.

ID tokens and JWT access tokens (``typ: at+jwt``) are signed with the active key; an
access token is not stored: its ``jti`` names its grant, so revoking the grant ends it,
and revoking the access token alone deny-lists its ``jti`` in the shared store until it
expires (RFC 7009).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import update

from idp.core import metrics
from idp.core.hashing import digest
from idp.core.storage import Account, Grant, RefreshToken, SsoSession, db
from idp.oidc import claims as claims_mod
from idp.oidc import dpop
from idp.oidc.token_store import read_grant, store_refresh_token

log = logging.getLogger(__name__)


@dataclass
class AuthContext:
    """The logged-in person as the authorization endpoint sees them."""

    account: Account
    session: SsoSession
    acr: str
    claims_request: dict | None = None


@dataclass
class TokenUser:
    """The subject of a token request: the account and the grant (token family)."""

    account: Account
    grant: Grant
    nonce: str | None = None
    extra: dict = field(default_factory=dict)
    stored_refresh_token: str | None = None  # stored with the code's claim: hand out this one


def current_time() -> int:
    return int(time.time())


def client_settings_of(client_id: str):
    client = current_app.extensions["idp.clients"].get(client_id)
    return client.settings if client is not None else None


def revoke_grant(grant_id: str, reason: str) -> None:
    """End a grant: its refresh tokens and access tokens stop working at once."""
    now = current_time()
    db.session.execute(
        update(Grant)
        .where(Grant.id == grant_id, Grant.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    # Access tokens name their grant in their jti: revoking the grant ends them too.
    log.warning("grant revoked reason=%s", reason)


def access_jti(grant_id: str) -> str:
    """A new access token id that names its grant (grant ids never contain a dot)."""
    return f"{grant_id}.{secrets.token_urlsafe(12)}"


def _revoked_key(jti: str) -> str:
    return "at-revoked:" + digest(jti)


def revoke_access_token(jti: str, exp: int) -> None:
    """Deny-list one access token until it expires (RFC 7009 on an access token)."""
    ttl = max(1, int(exp) - current_time())
    current_app.extensions["idp.kv"].set(_revoked_key(jti), b"1", ttl)


def access_token_subject(claims: dict) -> tuple[Any, Any] | None:
    """The live grant and account (their token-relevant columns, by name) behind the
    verified claims of one of our access tokens.

    None when it expired, was revoked (alone or with its grant) or names no grant of ours.
    """
    jti, exp = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or "." not in jti or not isinstance(exp, int) or exp < current_time():
        return None
    if current_app.extensions["idp.kv"].get(_revoked_key(jti)) is not None:
        return None
    found = read_grant(jti.split(".", 1)[0])
    if found is None or found[0].revoked_at is not None:
        return None
    return found


class Tokens:
    """Issues the access token (RFC 9068 JWT), the refresh token and the ID token."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = app.extensions["idp.settings"]

    @property
    def keys(self):
        return self.app.extensions["idp.keys"]

    def access_token(self, client, user: TokenUser, scope: str, now: int) -> str:
        jti = access_jti(user.grant.id)
        grant = user.grant
        claims = {
            "iss": self.settings.issuer,
            "sub": claims_mod.subject_for(client.settings, user.account),
            "aud": self.settings.issuer + "/userinfo",
            "client_id": client.client_id,
            "exp": now + self.settings.access_token_ttl,
            "iat": now,
            "jti": jti,
            "scope": scope,
            "auth_time": grant.auth_time,
            "acr": grant.acr,
            "amr": list(grant.amr),
        }
        if grant.session_id:
            claims["sid"] = grant.session_id
        claims.update(dpop.confirmation(g.get("dpop_jkt")))
        return self.keys.sign(claims, typ="at+jwt")

    def generate(
        self,
        grant_type,
        client,
        user: TokenUser = None,
        scope=None,
        expires_in=None,
        include_refresh_token=True,
    ):
        metrics.token_issued(grant_type)
        now = current_time()
        access = self.access_token(client, user, scope or "", now)
        token = {
            "token_type": "DPoP" if g.get("dpop_jkt") else "Bearer",
            "access_token": access,
            "expires_in": self.settings.access_token_ttl,
            "scope": scope or "",
        }
        if include_refresh_token:
            token["refresh_token"] = user.stored_refresh_token or secrets.token_urlsafe(32)  # 256 bits
        return token

    def save(self, token: dict, request) -> None:
        """Store a new refresh token, unless the code's claim already stored it.

        Only refresh tokens are stored: an access token is a signed JWT whose jti names
        its grant (revoking the grant ends it) and is deny-listed when revoked on its own.
        """
        user: TokenUser = request.user
        if "refresh_token" not in token or token["refresh_token"] == user.stored_refresh_token:
            return
        now = current_time()
        expires = now + self.settings.refresh_token_ttl
        # Committed by Server.create_token_response with the rest of the token request.
        store_refresh_token(db.session.connection(), user.grant.id, token["refresh_token"], now, expires)

    def id_token(self, client, user: TokenUser, scope: str, access_token: str | None) -> str:
        now = current_time()
        grant = user.grant
        claims: dict[str, Any] = {
            "iss": self.settings.issuer,
            "sub": claims_mod.subject_for(client.settings, user.account),
            "aud": client.client_id,
            "azp": client.client_id,
            "exp": now + self.settings.id_token_ttl,
            "iat": now,
            "auth_time": grant.auth_time,
            "acr": grant.acr,
            "amr": list(grant.amr),
        }
        if grant.session_id:
            claims["sid"] = grant.session_id
        if user.nonce:
            claims["nonce"] = user.nonce
        if access_token:
            claims["at_hash"] = claims_mod.half_hash(access_token, self.keys.active.alg)
        claims.update(claims_mod.id_token_claims(user.account, scope, grant.claims, client.settings))
        return self.keys.sign(claims, typ="JWT")


class IdTokenExtension:
    """Adds the ID token to code and refresh responses (OpenID Connect Core 3.1.3.3, 12.2)."""

    def __call__(self, grant):
        grant.register_hook("after_create_token_response", self.process_token)

    def process_token(self, grant, response):
        _, token, _ = response
        scope = token.get("scope") or ""
        if "openid" not in scope.split():
            return token
        tokens: Tokens = current_app.extensions["idp.tokens"]
        token["id_token"] = tokens.id_token(
            grant.request.client, grant.request.user, scope, token.get("access_token")
        )
        return token
