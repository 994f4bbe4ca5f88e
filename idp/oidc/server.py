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
from dataclasses import dataclass

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidRequestError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app
from flask import request as flask_request

from idp.core import health
from idp.core.errors import describe
from idp.core.hashing import digest
from idp.core.storage import Account, Grant, RefreshToken, db
from idp.oidc import claims as claims_mod
from idp.oidc import tokens
from idp.oidc.grants import (
    ALL_AUTH_METHODS,
    NO_STORE,
    ClientAssertion,
    CodeGrant,
    RefreshGrant,
    S256Required,
)
from idp.oidc.tokens import IdTokenExtension, Tokens, access_token_subject, revoke_access_token, revoke_grant
from idp.oidc.transport import ProviderRequest

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------
# Token generation and storage
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Grants
# ---------------------------------------------------------------------------


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
    now = now or tokens.current_time()
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
            "sub": claims_mod.subject_for(tokens.client_settings_of(grant.client_id), account)
            if account
            else None,
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
