"""The grants, on Authlib's: the authorization code with PKCE S256 (RFC 6749 4.1, RFC 7636)
and the OpenID Connect code flow, refresh tokens with rotation and reuse detection for
public clients (RFC 9700 4.14), and ``private_key_jwt`` client authentication (RFC 7523)
with the audience FAPI 2.0 requires.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidGrantError,
    InvalidRequestError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import current_app
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, update

from idp.core.hashing import digest
from idp.core.storage import Account, AuthorizationCode, Grant, RefreshToken, db
from idp.oidc import dpop, tokens
from idp.oidc.token_store import ClaimedCode, claim_code
from idp.oidc.tokens import AuthContext, TokenUser, revoke_grant

log = logging.getLogger(__name__)


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
        now = tokens.current_time()
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
        now = tokens.current_time()
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
        now = tokens.current_time()
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
                .values(used_at=tokens.current_time())
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
        ttl = (
            max(60, min(int(exp) - tokens.current_time() + self.leeway, 86400))
            if isinstance(exp, int)
            else 600
        )
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
