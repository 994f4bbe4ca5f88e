"""Discovery (OpenID Connect Discovery 1.0, RFC 8414) and the JWKS.

Both are built once per process and served from pre-serialised bytes; the
JWKS is rebuilt only when the key ring changes (rotation).
"""

from __future__ import annotations

import json

from flask import Blueprint, Flask, Response, current_app

from idp.core.client_settings import SCOPES
from idp.oidc.claims import claims_supported
from idp.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS

bp = Blueprint("discovery", __name__)


def metadata(settings) -> dict:
    iss = settings.issuer
    return {
        "issuer": iss,
        "authorization_endpoint": iss + "/authorize",
        "token_endpoint": iss + "/token",
        "userinfo_endpoint": iss + "/userinfo",
        "jwks_uri": iss + "/jwks.json",
        "revocation_endpoint": iss + "/revoke",
        "introspection_endpoint": iss + "/introspect",
        "end_session_endpoint": iss + "/logout",
        "scopes_supported": list(SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": [settings.signing_algorithm],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["RS256", "PS256", "ES256"],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": claims_supported(settings),
        "claims_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "acr_values_supported": list(settings.acr_values.values()),
        "prompt_values_supported": ["none", "login", "consent"],
        "display_values_supported": ["page"],
        "claim_types_supported": ["normal"],
        "ui_locales_supported": list(settings.languages),
        "claims_locales_supported": list(settings.languages),
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        # RFC 9126: PAR for every client; required of those registered so (and fapi2 ones)
        "pushed_authorization_request_endpoint": iss + "/par",
        "require_pushed_authorization_requests": False,
        # RFC 9449: DPoP-bound access tokens
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


@bp.route("/.well-known/openid-configuration")
def configuration():
    body = current_app.extensions["idp.discovery_bytes"]
    return Response(
        body,
        mimetype="application/json",
        headers={"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"},
    )


@bp.route("/jwks.json")
def jwks():
    body = current_app.extensions["idp.keys"].jwks_bytes()
    return Response(
        body,
        mimetype="application/jwk-set+json",
        headers={"Cache-Control": "public, max-age=600", "Access-Control-Allow-Origin": "*"},
    )


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.discovery_bytes"] = json.dumps(metadata(settings), separators=(",", ":")).encode()
    app.register_blueprint(bp)
