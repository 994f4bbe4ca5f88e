"""The pushed authorization request endpoint (RFC 9126), on Authlib's endpoint machinery.

Authlib has no server side for PAR. This endpoint authenticates the client as
the token endpoint does (section 2: the same methods), validates the request
as the authorization endpoint would (section 2.1: redirect URI, response
type, scope, PKCE, OpenID parameters), and answers ``201`` with a single-use
``request_uri`` bound to the client and valid for
:data:`idp.oidc.par_store.LIFETIME` seconds (section 2.2). A DPoP proof sent
with the push binds the code to its key (RFC 9449 section 10.1).

The authorization endpoint then takes the request by its ``request_uri``
(:func:`idp.oidc.authorize.resolve_pushed_request`); a client with
``require_pushed_authorization_requests`` is refused any other way.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, UnsupportedResponseTypeError
from authlib.oauth2.rfc6749.endpoint import Endpoint
from flask import Blueprint, Flask, current_app

from idp.core.security import csrf
from idp.oidc import dpop, par_store
from idp.oidc.authorize import AuthorizationFailure, StoredRequest, check_openid_parameters, single_params
from idp.oidc.grants import ALL_AUTH_METHODS

bp = Blueprint("par", __name__)
MAX_PUSHED = 16 * 1024  # characters kept in the shared store per request (anyone may push as a public client)


class PushedAuthorization(Endpoint):
    ENDPOINT_NAME = "pushed_authorization"
    CLIENT_AUTH_METHODS = [m for m in ALL_AUTH_METHODS if m != "none"] + ["none"]

    def create_endpoint_response(self, request):
        client = self.server.authenticate_client(request, self.CLIENT_AUTH_METHODS, "par")
        params = single_params(request.form)
        if params.get("client_id", client.client_id) != client.client_id:
            raise InvalidRequestError("client_id is not the authenticated client")
        params["client_id"] = client.client_id
        for name in ("client_secret", "client_assertion", "client_assertion_type"):
            params.pop(name, None)  # client authentication, not part of the request
        validate(client, params)
        jkt = dpop.authorization_request_key()
        if jkt and params.get("dpop_jkt", jkt) != jkt:
            raise dpop.DPoPError("invalid_dpop_proof", "dpop_jkt does not match the DPoP proof's key")
        if jkt:
            params["dpop_jkt"] = jkt
        request_uri = par_store.push(client.client_id, params)
        return (
            201,
            {"request_uri": request_uri, "expires_in": par_store.LIFETIME},
            [
                ("Content-Type", "application/json"),
                ("Cache-Control", "no-store"),
            ],
        )


def validate(client, params: dict[str, str]) -> None:
    """What the authorization endpoint would check of the request itself (section 2.1)."""
    if params.get("__duplicate__"):
        raise InvalidRequestError(f"parameter {params['__duplicate__']} given more than once")
    if sum(len(k) + len(v) for k, v in params.items()) > MAX_PUSHED:
        raise InvalidRequestError("the pushed request is too large")
    if "request_uri" in params:
        raise InvalidRequestError("request_uri cannot be pushed (RFC 9126 section 2.1)")
    if not params.get("redirect_uri") or not client.check_redirect_uri(params["redirect_uri"]):
        raise InvalidRequestError("redirect_uri is not registered for this client")
    if not params.get("response_type"):
        raise InvalidRequestError("response_type is required")
    if params["response_type"] != "code":
        raise UnsupportedResponseTypeError("only response_type=code is supported", "code")
    try:
        check_openid_parameters(params)
    except AuthorizationFailure as exc:
        error = OAuth2Error(description=exc.description, status_code=400)
        error.error = exc.error
        raise error from None
    settings = current_app.extensions["idp.settings"]
    grant = current_app.extensions["idp.oauth"].get_authorization_grant(
        StoredRequest(params, settings.issuer + "/authorize", settings.production)
    )
    try:
        grant.validate_authorization_request()
    except OAuth2Error as exc:
        exc.redirect_uri = None  # answered to the client in JSON (section 2.3), never redirected
        raise


@bp.route("/par", methods=["POST"])
def pushed_authorization_request():
    return current_app.extensions["idp.oauth"].create_endpoint_response("pushed_authorization")


def init_app(app: Flask) -> None:
    app.extensions["idp.oauth"].register_endpoint(PushedAuthorization)
    app.register_blueprint(bp)
    csrf.exempt(pushed_authorization_request)  # called by the client's server, not a browser form
