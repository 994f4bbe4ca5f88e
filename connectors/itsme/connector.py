"""The itsme login: authorization code flow with PKCE against itsme.

OIDC Core section 3.1 (authorization code flow): :meth:`ItsmeConnector.begin`
builds the authentication request (section 3.1.2.1, PKCE per RFC 7636
section 4, ``claims`` per section 5.5); :meth:`ItsmeConnector.complete`
checks the response (section 3.1.2.5-7, RFC 9207 ``iss`` when sent), redeems
the code at the token endpoint with ``private_key_jwt`` (RFC 7523 section 2.2,
OIDC Core section 9) or ``client_secret_post``, opens and checks the nested
ID token (section 3.1.3.7) and userinfo response (section 5.3.2), and maps
them to an :class:`~connectors.base.Identity`.

The host stores the transaction returned by :meth:`begin` server-side, bound
to the browser, and hands it back to :meth:`complete`. Nothing here logs
codes, tokens or national register numbers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import requests
from joserfc import jwt

from connectors.base import LEVELS, ConnectorError, Identity, level_rank

from .identity import build_identity
from .keys import RPKeys
from .provider import Provider, fetch
from .settings import ItsmeSettings
from .tokens import check_id_token, check_userinfo, open_nested

log = logging.getLogger(__name__)

TRANSACTION_MAX_AGE = 600  # the person confirms on the phone; itsme's code itself lives 3 minutes
ASSERTION_LIFETIME = 60
UI_LOCALES = ("fr", "nl", "de", "en")
_CANCELLED = ("access_denied",)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _same(a: Any, b: Any) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


class ItsmeConnector:
    """Log a person in with itsme; see the module docstring."""

    method = "itsme"

    def __init__(
        self,
        settings: ItsmeSettings,
        keys: RPKeys,
        http: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.http = http or requests.Session()
        self.clock = clock
        self.provider = Provider(
            settings.discovery_url, self.http, settings.timeout, settings.jwks_max_age, clock
        )

    # -- authentication request ---------------------------------------------
    def acr_for(self, level: str) -> str:
        """The weakest configured itsme ``acr`` that reaches ``level`` (inverse of ``levels``)."""
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}")
        wanted = level_rank(level)
        reaching = [
            (level_rank(lv), acr) for acr, lv in self.settings.levels.items() if level_rank(lv) >= wanted
        ]
        if not reaching:
            raise ConnectorError("insufficient_level", f"no configured itsme acr reaches {level}")
        return min(reaching)[1]

    def begin(
        self, *, level: str = "substantial", locale: str = "fr", login_hint: str | None = None
    ) -> tuple[str, dict]:
        """Return (authorization URL, transaction). transaction is a JSON-serialisable dict
        (state, nonce, code_verifier, created_at, requested acr) that the host stores
        server-side, bound to the browser, and passes back to complete().

        OIDC Core section 3.1.2.1 with PKCE S256 (RFC 7636 section 4.2). Raises
        ``upstream_unavailable`` when discovery fails.
        """
        s = self.settings
        acr = self.acr_for(level)
        metadata = self.provider.metadata()
        verifier = secrets.token_urlsafe(48)
        transaction = {
            "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32),
            "code_verifier": verifier,
            "created_at": self.clock(),
            "acr": acr,
            "level": level,
        }
        lang = (locale or "").split("-")[0].split("_")[0].lower()
        params = {
            "response_type": "code",
            "client_id": s.client_id,
            "redirect_uri": s.redirect_uri,
            "scope": " ".join(("openid", f"service:{s.service_code}", *s.scopes)),
            "state": transaction["state"],
            "nonce": transaction["nonce"],
            "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()),
            "code_challenge_method": "S256",
            "acr_values": acr,
            "ui_locales": lang if lang in UI_LOCALES else "fr",
        }
        if s.claims:
            params["claims"] = json.dumps({"userinfo": dict.fromkeys(s.claims)}, separators=(",", ":"))
        if login_hint:
            params["login_hint"] = login_hint
        sep = "&" if "?" in metadata.authorization_endpoint else "?"
        return f"{metadata.authorization_endpoint}{sep}{urlencode(params)}", transaction

    # -- response ----------------------------------------------------------
    def complete(self, params: Mapping[str, str], transaction: dict | None) -> Identity:
        """Handle the redirect back (query params of the callback). Raise ConnectorError with codes:
        "cancelled" (error=access_denied or user cancelled), "upstream_error" (other error param),
        "invalid_state" (missing/mismatched/expired/absent transaction), "upstream_unavailable"
        (timeouts, connection errors, 5xx, bad discovery), "invalid_token" (any token validation
        failure; detail says which check, no secrets), "insufficient_level" (acr lower than requested).
        """
        try:
            identity = self._complete(params, transaction)
        except ConnectorError as exc:
            log.warning("itsme login failed: %s (%s)", exc.code, exc.detail)
            raise
        log.info("itsme login succeeded: level=%s", identity.level)
        return identity

    def _complete(self, params: Mapping[str, str], transaction: dict | None) -> Identity:
        tx = self._check_state(params, transaction)
        metadata = self.provider.metadata()
        if "iss" in params and params["iss"] != metadata.issuer:
            raise ConnectorError("invalid_state", "iss parameter is not the itsme issuer (RFC 9207)")
        if "iss" not in params and metadata.iss_parameter_supported:
            raise ConnectorError("invalid_state", "iss parameter missing, though announced (RFC 9207)")
        error = params.get("error")
        if error:
            code = "cancelled" if error in _CANCELLED else "upstream_error"
            raise ConnectorError(code, f"itsme error {error[:40]!r}")
        code = params.get("code")
        if not code:
            raise ConnectorError("upstream_error", "neither code nor error in the callback")

        tokens = self._redeem(code, tx["code_verifier"], metadata.token_endpoint)
        id_claims = open_nested(
            tokens.get("id_token"), "id_token", self.keys.decryption_key, self.provider.signing_key
        )
        level = check_id_token(
            id_claims,
            issuer=metadata.issuer,
            client_id=self.settings.client_id,
            nonce=tx["nonce"],
            now=self.clock(),
            levels=self.settings.levels,
            requested_level=tx["level"],
        )
        userinfo = self._userinfo(tokens, metadata.userinfo_endpoint)
        check_userinfo(
            userinfo, issuer=metadata.issuer, client_id=self.settings.client_id, sub=id_claims["sub"]
        )
        return build_identity(metadata.issuer, id_claims["sub"], id_claims["acr"], level, id_claims, userinfo)

    def _check_state(self, params: Mapping[str, str], transaction: dict | None) -> dict:
        if not isinstance(transaction, dict):
            raise ConnectorError("invalid_state", "no login transaction")
        wanted = ("state", "nonce", "code_verifier", "level")
        if not all(isinstance(transaction.get(k), str) for k in wanted) or transaction["level"] not in LEVELS:
            raise ConnectorError("invalid_state", "malformed login transaction")
        created = transaction.get("created_at")
        if isinstance(created, bool) or not isinstance(created, (int, float)):
            raise ConnectorError("invalid_state", "malformed login transaction")
        if not _same(params.get("state"), transaction["state"]):
            raise ConnectorError("invalid_state", "state missing or mismatched")
        if self.clock() - created > TRANSACTION_MAX_AGE:
            raise ConnectorError("invalid_state", "login transaction expired")
        return transaction

    # -- back channel --------------------------------------------------------
    def _redeem(self, code: str, verifier: str, token_endpoint: str) -> dict:
        s = self.settings
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": s.redirect_uri,
            "code_verifier": verifier,
            "client_id": s.client_id,
        }
        if s.client_auth == "client_secret_post":
            form["client_secret"] = s.client_secret or ""
        else:
            form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            form["client_assertion"] = self.client_assertion(token_endpoint)
        response = fetch(self.http, "POST", token_endpoint, s.timeout, "token", data=form)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise ConnectorError("upstream_error", f"token: HTTP {response.status_code} {str(error)[:40]}")
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise ConnectorError("upstream_error", "token: response without access_token")
        if str(body.get("token_type", "")).lower() != "bearer":
            raise ConnectorError("upstream_error", "token: token_type is not Bearer")
        return body

    def client_assertion(self, token_endpoint: str) -> str:
        """RFC 7523 section 3 client assertion, signed RS256 with our current ``sig`` key."""
        key = self.keys.signing_key()
        now = int(self.clock())
        claims = {
            "iss": self.settings.client_id,
            "sub": self.settings.client_id,
            "aud": token_endpoint,
            "jti": secrets.token_urlsafe(32),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key, algorithms=["RS256"])

    def _userinfo(self, tokens: dict, userinfo_endpoint: str) -> dict:
        headers = {"Authorization": f"Bearer {tokens['access_token']}", "Accept": "application/jwt"}
        response = fetch(
            self.http, "GET", userinfo_endpoint, self.settings.timeout, "userinfo", headers=headers
        )
        if response.status_code != 200:
            raise ConnectorError("upstream_error", f"userinfo: HTTP {response.status_code}")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type != "application/jwt":
            raise ConnectorError(
                "invalid_token", "userinfo: not encrypted (content type not application/jwt)"
            )
        return open_nested(
            response.text.strip(), "userinfo", self.keys.decryption_key, self.provider.signing_key
        )
