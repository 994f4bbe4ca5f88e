"""The OAuth 2.0 / OpenID Connect machinery, on Authlib.

Authlib does the protocol mechanics (RFC 6749 grants, RFC 7636 PKCE, RFC 7523
client assertions, RFC 7009 revocation, RFC 7662 introspection, RFC 9207
``iss``, OpenID Connect Core); this module gives it our storage and tightens
it where the rules of this provider are stricter:

* PKCE with ``S256`` for public clients and, unless switched off per client
  (``require_pkce``), for confidential ones; ``plain`` refused everywhere.
* Codes single use (claimed atomically) and bound to client, redirect URI and
  PKCE; a replayed code revokes every token its first redemption issued
  (RFC 6749 section 4.1.2, RFC 9700 section 4.2.4).
* Public clients' refresh tokens rotate; reusing a rotated one revokes the
  whole family (RFC 9700 section 4.14.2). Confidential clients' refresh
  tokens are bound to the client that got them.
* Access tokens are JWTs per RFC 9068 (``typ: at+jwt``) whose ``jti`` names
  their grant, so code replay and logout (which revoke the grant) end them;
  revoking one alone deny-lists its ``jti`` until it expires.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    UnsupportedResponseTypeError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app, g
from flask import request as flask_request
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, update

from idp.core import health, metrics
from idp.core.errors import describe
from idp.core.hashing import digest
from idp.core.storage import Account, AuthorizationCode, Grant, RefreshToken, SsoSession, db
from idp.oidc import claims as claims_mod
from idp.oidc import dpop
from idp.oidc.token_store import ClaimedCode, claim_code, read_grant, store_refresh_token
from idp.oidc.transport import ProviderRequest

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


def _now() -> int:
    return int(time.time())


def _client_settings(client_id: str):
    client = current_app.extensions["idp.clients"].get(client_id)
    return client.settings if client is not None else None


def revoke_grant(grant_id: str, reason: str) -> None:
    """End a grant: its refresh tokens and access tokens stop working at once."""
    now = _now()
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


# ---------------------------------------------------------------------------
# Token generation and storage
# ---------------------------------------------------------------------------


def access_jti(grant_id: str) -> str:
    """A new access token id that names its grant (grant ids never contain a dot)."""
    return f"{grant_id}.{secrets.token_urlsafe(12)}"


def _revoked_key(jti: str) -> str:
    return "at-revoked:" + digest(jti)


def revoke_access_token(jti: str, exp: int) -> None:
    """Deny-list one access token until it expires (RFC 7009 on an access token)."""
    ttl = max(1, int(exp) - _now())
    current_app.extensions["idp.kv"].set(_revoked_key(jti), b"1", ttl)


def access_token_subject(claims: dict) -> tuple[Any, Any] | None:
    """The live grant and account (their token-relevant columns, by name) behind the
    verified claims of one of our access tokens.

    None when it expired, was revoked (alone or with its grant) or names no grant of ours.
    """
    jti, exp = claims.get("jti"), claims.get("exp")
    if not isinstance(jti, str) or "." not in jti or not isinstance(exp, int) or exp < _now():
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
        now = _now()
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
        now = _now()
        expires = now + self.settings.refresh_token_ttl
        # Committed by Server.create_token_response with the rest of the token request.
        store_refresh_token(db.session.connection(), user.grant.id, token["refresh_token"], now, expires)

    def id_token(self, client, user: TokenUser, scope: str, access_token: str | None) -> str:
        now = _now()
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


# ---------------------------------------------------------------------------
# Grants
# ---------------------------------------------------------------------------

REPLAYED = "authorization_code_replayed"
NO_STORE = [("Content-Type", "application/json"), ("Cache-Control", "no-store"), ("Pragma", "no-cache")]
ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


class S256Required(CodeChallenge):
    """PKCE with ``S256`` only (RFC 9700 section 2.1.1); ``plain`` is refused everywhere.

    Required of every public client and, unless the operator switched it off
    (``require_pkce = false``), of confidential ones; OpenID Connect's nonce
    protects a confidential client's code flow too. A code issued with a
    challenge still needs its verifier, and a verifier for a code issued
    without one is refused (downgrade protection, RFC 9700 section 4.8).
    """

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            if grant.request.client.settings.require_pkce:
                raise InvalidRequestError(
                    "PKCE is required: send code_challenge with code_challenge_method=S256."
                )
            if data.get("code_challenge_method"):
                raise InvalidRequestError("code_challenge_method without code_challenge.")
            return
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code):
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code):
        return authorization_code.code_challenge_method


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def save_authorization_code(self, code: str, request) -> None:
        ctx: AuthContext = request.user
        settings = current_app.extensions["idp.settings"]
        data = request.payload.data
        now = _now()
        code_ttl = min(settings.code_ttl, 60) if request.client.settings.fapi2 else settings.code_ttl
        grant = Grant(
            id=secrets.token_urlsafe(18),
            dpop_jkt=data.get("dpop_jkt") or None,
            account_id=ctx.account.id,
            client_id=request.client.client_id,
            session_id=ctx.session.id,
            scope=request.scope or "",
            claims=ctx.claims_request,
            auth_time=ctx.session.auth_time,
            acr=ctx.acr,
            amr=list(ctx.session.amr),
            created_at=now,
        )
        db.session.add(grant)
        db.session.flush()  # the code row refers to the grant
        db.session.add(
            AuthorizationCode(
                code_hash=digest(code),
                grant_id=grant.id,
                client_id=request.client.client_id,
                redirect_uri=request.payload.redirect_uri,
                nonce=data.get("nonce"),
                # No challenge (a confidential client with require_pkce = false): empty, and
                # then a code_verifier at the token endpoint is refused (RFC 9700 section 4.8).
                code_challenge=data.get("code_challenge") or "",
                code_challenge_method="S256" if data.get("code_challenge") else "",
                expires_at=now + code_ttl,
            )
        )
        db.session.commit()

    def query_authorization_code(self, code: str, client):
        """Claim the code atomically: of N concurrent redemptions exactly one wins.

        One statement claims the code (``UPDATE … RETURNING``), stores the
        refresh token this redemption will hand out (when the client may
        refresh) and reads the grant and the account; it commits on its own.
        A concurrent redemption waits for the row lock, then finds the code
        used. A request refused after the claim (wrong PKCE verifier, say)
        has used the code up; the refresh token stored for it is deleted
        again (see :meth:`create_token_response`).
        """
        if not isinstance(code, str) or len(code) > 512:
            return None
        h = digest(code)
        refresh = secrets.token_urlsafe(32) if client.check_grant_type("refresh_token") else None
        now = _now()
        refresh_expires = now + current_app.extensions["idp.settings"].refresh_token_ttl
        claimed = claim_code(h, client.client_id, now, refresh, refresh_expires)
        if claimed is not None:
            self._claimed = claimed
            return claimed
        row = db.session.get(AuthorizationCode, h)
        if row is not None and row.used_at is not None:
            # A second redemption: whoever holds this code is not to be trusted.
            revoke_grant(row.grant_id, REPLAYED)
            db.session.commit()
        return None

    def validate_token_request(self):
        jkt = dpop.token_request_key()  # before the code is claimed: a nonce retry must not use it up
        try:
            super().validate_token_request()
            claimed: ClaimedCode = self.request.authorization_code
            bind = dpop.check_binding(self.request.client, claimed.grant, jkt, "code")
        except OAuth2Error:
            self._unstore_refresh_token()
            raise
        if bind:
            db.session.execute(update(Grant).where(Grant.id == claimed.grant.id).values(dpop_jkt=bind))
            db.session.commit()

    def create_token_response(self):
        try:
            return super().create_token_response()
        except OAuth2Error:
            self._unstore_refresh_token()
            raise

    def _unstore_refresh_token(self) -> None:
        """A redemption refused after its claim hands out no refresh token: delete the one stored."""
        claimed: ClaimedCode | None = getattr(self, "_claimed", None)
        if claimed is not None and claimed.refresh_token:
            db.session.execute(
                delete(RefreshToken).where(RefreshToken.token_hash == digest(claimed.refresh_token))
            )
            db.session.commit()

    def delete_authorization_code(self, authorization_code) -> None:
        pass  # already marked used when claimed

    def authenticate_user(self, authorization_code: ClaimedCode):
        grant, account = authorization_code.grant, authorization_code.account
        if grant.revoked_at is not None:
            return None  # e.g. logged out since: no tokens
        if account.status != "active":
            return None
        return TokenUser(
            account=account,
            grant=grant,
            nonce=authorization_code.nonce,
            stored_refresh_token=authorization_code.refresh_token,
        )


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _validate_request_token(self, client):
        value = self.request.form.get("refresh_token")
        if value is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")
        if not isinstance(value, str) or len(value) > 512:
            raise InvalidGrantError()
        h = digest(value)
        row = db.session.get(RefreshToken, h)
        now = _now()
        if row is None:
            raise InvalidGrantError()
        grant = db.session.get(Grant, row.grant_id)
        if grant is None or grant.client_id != client.client_id:
            raise InvalidGrantError()  # bound to the client it was issued to
        if grant.revoked_at is not None or row.revoked_at is not None or row.expires_at < now:
            raise InvalidGrantError()
        if client.is_public and row.used_at is not None:
            self._reused(grant)
        self.INCLUDE_NEW_REFRESH_TOKEN = client.is_public
        return _RefreshView(row, grant)

    def validate_token_request(self):
        """Authlib's checks (client, token, scope), then a public client's token is rotated.

        The token is claimed atomically only once the request is otherwise valid,
        so a request refused for its scope does not use it up; of two concurrent
        uses exactly one claims it and the other revokes the family. A public
        client's refresh token is bound to its DPoP key, if it used one (RFC 9449 section 5).
        The claim commits with the new token, once the whole answer is built: a failure
        in between leaves the old token usable and the family alive.
        """
        jkt = dpop.token_request_key()
        super().validate_token_request()
        view: _RefreshView = self.request.refresh_token
        bind = dpop.check_binding(self.request.client, view.grant, jkt, "refresh")
        if bind:
            view.grant.dpop_jkt = bind
        if self.request.client.is_public:
            # Not committed here: the claim, the new token's INSERT and the answer succeed
            # together or not at all (Server.create_token_response commits). The row lock
            # makes a concurrent use wait for that commit, then find used_at set.
            claimed = db.session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == view.row.token_hash, RefreshToken.used_at.is_(None))
                .values(used_at=_now())
            ).rowcount
            if claimed != 1:
                db.session.rollback()
                self._reused(view.grant)

    @staticmethod
    def _reused(grant: Grant):
        revoke_grant(grant.id, "refresh_token_reused")
        db.session.commit()
        raise InvalidGrantError("Refresh token reused: the session's tokens were revoked.")

    def authenticate_user(self, refresh_token):
        account = db.session.get(Account, refresh_token.grant.account_id)
        if account is None or account.status != "active":
            raise InvalidGrantError("The account is no longer active.")
        return TokenUser(account=account, grant=refresh_token.grant)

    def revoke_old_credential(self, refresh_token) -> None:
        pass  # public clients' tokens were claimed (rotated) in _validate_request_token


@dataclass
class _RefreshView:
    row: RefreshToken
    grant: Grant

    def get_scope(self) -> str:
        return self.grant.scope

    def check_client(self, client) -> bool:
        return self.grant.client_id == client.client_id


class ClientAssertion(JWTBearerClientAssertion):
    """``private_key_jwt`` (RFC 7523 section 2.2); aud may be the token endpoint or the issuer."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def get_audiences(self):
        issuer = current_app.extensions["idp.settings"].issuer
        return [issuer + "/token", issuer, issuer + "/par"]

    def verify_claims(self, claims):
        """FAPI 2.0 Security Profile 5.3.2.1: a fapi2 client's ``aud`` is the issuer, as a string."""
        super().verify_claims(claims)
        client = current_app.extensions["idp.clients"].get(claims.get("sub"))
        issuer = current_app.extensions["idp.settings"].issuer
        if client is not None and client.settings.fapi2 and claims.get("aud") != issuer:
            raise InvalidClientError(description="The client assertion's aud must be the issuer.")

    def validate_jti(self, claims, jti):
        """Each assertion once (RFC 7523 section 3): remembered until it expires."""
        kv = current_app.extensions["idp.kv"]
        exp = claims.get("exp")
        ttl = max(60, min(int(exp) - _now() + self.leeway, 86400)) if isinstance(exp, int) else 600
        return kv.add(f"jti:{claims['sub']}:{digest(str(jti))}", b"1", ttl)

    def resolve_client_public_key(self, client):

        # A client registered for another method has no keys: refuse it here, before
        # any key import, rather than after checking a signature it cannot have made.
        if client.settings.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD or not client.settings.jwks:
            raise InvalidClientError(description="The client does not authenticate with private_key_jwt.")
        try:
            return KeySet.import_key_set(client.settings.jwks)
        except (ValueError, JoseError):
            log.error("client %s has an unusable jwks_file", client.client_id)
            raise InvalidClientError(description="The client's keys cannot be used.") from None


# ---------------------------------------------------------------------------
# Revocation and introspection
# ---------------------------------------------------------------------------


@dataclass
class _TokenRef:
    kind: str  # "access_token" | "refresh_token"
    grant: Grant
    client_id: str
    refresh: RefreshToken | None = None
    claims: dict | None = None  # an access token's verified claims
    account: Account | None = None

    def check_client(self, client) -> bool:
        return self.client_id == client.client_id

    def get_client_id(self):
        return self.client_id

    def get_scope(self):
        return self.grant.scope


def find_token(token_string: str, hint: str | None) -> _TokenRef | None:
    if not isinstance(token_string, str) or len(token_string) > 8192:
        return None
    order = ["refresh_token", "access_token"] if hint != "access_token" else ["access_token", "refresh_token"]
    for kind in order:
        if kind == "refresh_token" and "." not in token_string:
            row = db.session.get(RefreshToken, digest(token_string))
            if row is not None:
                grant = db.session.get(Grant, row.grant_id)
                if grant is not None:
                    return _TokenRef("refresh_token", grant, grant.client_id, refresh=row)
        if kind == "access_token" and token_string.count(".") == 2:
            claims = _access_token_claims(token_string)
            if claims is None:
                continue
            live = access_token_subject(claims)
            if live is not None:
                grant, account = live
                return _TokenRef("access_token", grant, grant.client_id, claims=claims, account=account)
    return None


def _access_token_claims(token_string: str) -> dict | None:
    try:
        return current_app.extensions["idp.keys"].verify(token_string, typ="at+jwt")
    except Exception:  # noqa: BLE001 - any failure means "not one of ours"
        return None


def token_is_active(ref: _TokenRef, now: int | None = None) -> bool:
    now = now or _now()
    if ref.grant.revoked_at is not None:
        return False
    if ref.kind == "access_token":
        return access_token_subject(ref.claims) is not None
    row = ref.refresh
    if row.revoked_at is not None or row.expires_at < now:
        return False
    return row.used_at is None  # else rotated away


def _check_token_param(request) -> None:
    """``token`` is required; a hint we do not know is ignored (RFC 7009 section 2.1,
    RFC 7662 section 2.1), where Authlib answers 401 ``unsupported_token_type``."""
    token = request.form.get("token")
    if not isinstance(token, str) or "token" not in request.form:
        raise InvalidRequestError("Missing 'token' in request.")


class Revocation(RevocationEndpoint):
    """RFC 7009: revoking a refresh token ends its grant; unknown tokens get 200."""

    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def check_params(self, request, client):
        _check_token_param(request)

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def revoke_token(self, token: _TokenRef, request):
        if token.kind == "refresh_token":
            revoke_grant(token.grant.id, "revoked_by_client")
            db.session.commit()
        else:
            revoke_access_token(token.claims["jti"], token.claims["exp"])


class Introspection(IntrospectionEndpoint):
    """RFC 7662: authenticated; another client's or an inactive token is only {"active": false}."""

    CLIENT_AUTH_METHODS = [m for m in ALL_AUTH_METHODS if m != "none"]

    def query_token(self, token_string, token_type_hint):
        return find_token(token_string, token_type_hint)

    def check_params(self, request, client):
        _check_token_param(request)

    def check_permission(self, token, client, request):
        return token.client_id == client.client_id

    def create_endpoint_response(self, request):
        client = self.authenticate_endpoint_client(request)
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is None or not token.check_client(client) or not token_is_active(token):
            return 200, {"active": False}, NO_STORE
        return 200, self.introspect_token(token), NO_STORE

    def introspect_token(self, token: _TokenRef):
        grant = token.grant
        account = db.session.get(Account, grant.account_id)
        settings = current_app.extensions["idp.settings"]
        out = {
            "active": True,
            "client_id": grant.client_id,
            "scope": grant.scope,
            "sub": claims_mod.subject_for(_client_settings(grant.client_id), account) if account else None,
            "exp": token.claims["exp"] if token.kind == "access_token" else token.refresh.expires_at,
            "iss": settings.issuer,
            "token_type": _token_type(token),
            "acr": grant.acr,
            "auth_time": grant.auth_time,
        }
        if token.kind == "access_token":
            if isinstance(token.claims.get("cnf"), dict):
                out["cnf"] = token.claims["cnf"]  # RFC 9449 section 6.2
            out["iat"] = token.claims.get("iat")
            out["jti"] = token.claims.get("jti")
            out["aud"] = token.claims.get("aud")
        return out


def _token_type(token: _TokenRef) -> str:
    if token.kind != "access_token":
        return "refresh_token"
    return "DPoP" if isinstance(token.claims.get("cnf"), dict) else "Bearer"


# ---------------------------------------------------------------------------


class Server(AuthorizationServer):
    def __init__(self, app: Flask) -> None:
        super().__init__()
        self._clients = app.extensions["idp.clients"]
        self._tokens = app.extensions["idp.tokens"]
        self._production = app.extensions["idp.settings"].production
        self.init_app(app)
        self.register_token_generator("default", self._tokens.generate)
        self.scopes_supported = None

    def query_client(self, client_id):
        return self._clients.get(client_id)

    def create_oauth2_request(self, request):
        return ProviderRequest(flask_request, self._production)

    def save_token(self, token, request):
        self._tokens.save(token, request)

    def get_error_uri(self, request, error):
        return None

    def get_authorization_grant(self, request):
        # Authlib builds its error for an unknown response_type with the raw value as the
        # description, and refuses to when the value holds a quote or a non-ASCII character
        # (a 500): answer such values here, echoing at most a bounded, cleaned part.
        response_type = request.payload.response_type or ""
        if describe(response_type, limit=len(response_type)) != response_type or len(response_type) > 64:
            client = self.query_client(request.payload.client_id)
            uri = request.payload.redirect_uri
            raise UnsupportedResponseTypeError(
                describe(response_type),
                "the response_type is not supported by the server",
                redirect_uri=uri if client is not None and uri and client.check_redirect_uri(uri) else None,
            )
        return super().get_authorization_grant(request)

    def create_token_response(self, request=None):
        duplicated = _duplicated_parameter()
        if duplicated:
            return self.handle_error_response(
                None, InvalidRequestError(f"parameter {describe(duplicated)} given more than once")
            )
        response = super().create_token_response(request)
        # One transaction per token request: a refresh token's rotation (claim + new token)
        # is kept only when the answer carrying the new token was built.
        if response.status_code == 200:
            db.session.commit()
        else:
            db.session.rollback()
        return response

    def create_endpoint_response(self, name, request=None):
        duplicated = _duplicated_parameter() if name in ("revocation", "introspection") else None
        if duplicated:
            return self.handle_error_response(
                None, InvalidRequestError(f"parameter {describe(duplicated)} given more than once")
            )
        return super().create_endpoint_response(name, request)

    def handle_response(self, status_code, payload, headers):
        response = super().handle_response(status_code, payload, headers)
        if response.mimetype == "application/json":
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response


def _duplicated_parameter() -> str | None:
    """RFC 6749 section 3.2: request parameters MUST NOT be included more than once."""
    form = flask_request.form
    for key in form:
        if len(form.getlist(key)) > 1:
            return key
    return None


def init_app(app: Flask) -> Server:
    app.extensions["idp.tokens"] = Tokens(app)
    server = Server(app)
    server.register_grant(CodeGrant, [S256Required(required=True), IdTokenExtension()])
    server.register_grant(RefreshGrant, [IdTokenExtension()])
    server.register_client_auth_method(ClientAssertion.CLIENT_AUTH_METHOD, ClientAssertion())
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["idp.oauth"] = server
    health.add_check(app, "signing_key", _signing_key_loaded)
    return server


def _signing_key_loaded(app: Flask) -> str | None:
    """Readiness: a key to sign ID and access tokens with (loaded, or loadable now)."""
    return None if app.extensions["idp.keys"].active.kid else "no active signing key"
