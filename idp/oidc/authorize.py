"""The authorization endpoint as a pipeline of small checks.

OpenID Connect Core 3.1.2 (authentication request), RFC 6749 section 4.1,
RFC 9207 (``iss`` in every response), OAuth 2.0 Form Post Response Mode.

1. client and redirect URI: unknown or unregistered never redirect (error page);
2. the request itself, through Authlib (response type, scope, PKCE S256) and
   our OpenID checks (``prompt``, ``max_age``, ``claims``, request objects);
3. is the SSO session good enough? (``prompt=login``, ``max_age``, assurance
   level, ``id_token_hint``, the client's allowed methods) — else log in, or
   ``login_required`` for ``prompt=none``;
4. consent (skipped for first-party clients, remembered for the others);
5. the code, bound to client, redirect URI and PKCE challenge.

A request that needs a login is parked in the browser session as a *login
transaction* (:mod:`idp.login.transaction`); the login pages come back to
:func:`resume` when done. The steps and their order are :data:`PIPELINE`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from idp.core import audit
from idp.core.errors import describe
from idp.core.i18n import pick_from_ui_locales
from idp.core.sessions import add_client, current_sso
from idp.core.storage import Consent, db
from idp.login.transaction import drop_transaction, get_transaction, save_transaction
from idp.oidc import claims as claims_mod
from idp.oidc import par_store
from idp.oidc.responses import error_page, new_transaction, respond
from idp.oidc.session_policy import login_reason, needs_consent, reachable, required_level_for
from idp.oidc.tokens import AuthContext
from idp.oidc.transport import for_transport_check

log = logging.getLogger(__name__)
bp = Blueprint("authorize", __name__)

JKT = re.compile(r"[A-Za-z0-9_-]{43}")


class StoredRequest(OAuth2Request):
    """An authorization request rebuilt from its parameters (GET, POST or resumed)."""

    def __init__(self, params: dict[str, str], uri: str, production: bool) -> None:
        super().__init__("GET", for_transport_check(uri, production))
        self.uri = uri
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self):
        return self._params

    @property
    def form(self):
        return {}


class AuthorizationFailure(Exception):
    """An error to send back to the client's redirect URI (OpenID Connect Core 3.1.2.6)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(error)
        self.error = error
        self.description = description


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def single_params(source) -> dict[str, str]:
    """One value per parameter; a repeated protocol parameter is noted as ``__duplicate__``."""
    out = {}
    for key in source:
        if key.startswith("__"):
            continue  # our own markers (``__duplicate__``, ``__pushed__``) never come from outside
        values = source.getlist(key)
        if len(values) > 1 and key in (
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
            "prompt",
            "max_age",
            "response_mode",
            "claims",
            "acr_values",
        ):
            out["__duplicate__"] = key
        out[key] = values[0]
    return out


@bp.route("/authorize", methods=["GET", "POST"])
def authorize():
    # No CORS here on purpose (RFC 9700 section 4.16): browsers come by navigation only.
    source = request.form if request.method == "POST" else request.args
    return process(single_params(source), tx=None)


@bp.route("/authorize/continue/<tx_id>")
def resume(tx_id: str):
    tx = get_transaction(tx_id)
    if tx is None:
        return error_page(
            _("This sign-in took too long or was already used. Please start again from the application.")
        )
    return process(tx["params"], tx=tx)


class Answer(Exception):  # noqa: N818 - not an error: a step's final answer
    """A step of the pipeline answers the request (a page, a redirect to the client or to login)."""

    def __init__(self, response) -> None:
        super().__init__("answer")
        self.response = response


MAX_DESCRIPTION = 200  # an error description never echoes an unbounded parameter value


@dataclass
class Authorization:
    """One authorization request as it goes through the pipeline's steps."""

    params: dict[str, str]
    tx: dict | None
    client: Any = None
    redirect_uri: str = ""
    response_mode: str = "query"
    grant: Any = None
    claims_request: dict | None = None
    required_level: str = "low"

    @property
    def state(self) -> str | None:
        return self.params.get("state")

    @property
    def prompts(self) -> set[str]:
        return set((self.params.get("prompt") or "").split())

    def fail(self, error: str, description: str):
        """End the pipeline with an error at the client's redirect URI (OpenID Connect Core 3.1.2.6)."""
        audit.record("authorize", "failure", client_id=self.client.client_id, error=error)
        # Descriptions may quote the request: RFC 6749 characters only, bounded length.
        description = describe(description, limit=MAX_DESCRIPTION)
        raise Answer(
            respond(
                self.redirect_uri,
                [("error", error), ("error_description", description), ("state", self.state)],
                self.response_mode,
            )
        )


def process(params: dict[str, str], tx: dict | None):
    """Run the request through the steps in order; the first that answers ends it.

    The order is the one certification expects: never redirect before the client
    and redirect URI are known (1); then malformed requests (2); then
    ``prompt=none`` without a session is ``login_required`` before any check of
    the request's content (3); then the content (4, 5); then the session (6),
    consent (7) and the code (8).
    """
    req = Authorization(params=params, tx=tx)
    try:
        for step in PIPELINE:
            step(req)
    except Answer as answer:
        return answer.response
    raise AssertionError("the last step always answers")  # pragma: no cover


def resolve_pushed_request(req: Authorization) -> None:
    """``request_uri`` from the PAR endpoint (RFC 9126 section 4): the pushed parameters, once."""
    if not str(req.params.get("request_uri", "")).startswith(par_store.PREFIX):
        return  # none, or a request object by reference: refused later (request_uri_not_supported)
    pushed = par_store.take(req.params["request_uri"], req.params.get("client_id"))
    if pushed is None:
        raise Answer(
            error_page(
                _("This sign-in took too long or was already used. Please start again from the application.")
            )
        )
    req.params = {**pushed, "__pushed__": "1"}


def check_client_and_redirect_uri(req: Authorization) -> None:
    """Unknown client or unregistered redirect URI: an error page, never a redirect."""
    req.client = current_app.extensions["idp.clients"].get(req.params.get("client_id"))
    if req.client is None:
        raise Answer(error_page(_("The application that sent you here is not known to us.")))
    uri = req.params.get("redirect_uri")
    if not uri or not req.client.check_redirect_uri(uri) or req.params.get("__duplicate__") == "redirect_uri":
        raise Answer(error_page(_("The application that sent you here gave an address we do not know.")))
    req.redirect_uri = uri


def check_pushed_if_required(req: Authorization) -> None:
    """A client registered with ``require_pushed_authorization_requests`` (RFC 9126 section 6)."""
    if req.client.settings.require_pushed_authorization_requests and not req.params.get("__pushed__"):
        req.fail("invalid_request", "this client must push its authorization requests (PAR)")


def check_response_mode(req: Authorization) -> None:
    mode = req.params.get("response_mode") or "query"
    web_redirect = urlsplit(req.redirect_uri).scheme in ("http", "https")
    if mode not in ("query", "form_post") or (mode == "form_post" and not web_redirect):
        # form_post needs a web page to post to; an app's private-use scheme cannot receive it.
        req.fail("invalid_request", "unsupported response_mode for this redirect_uri")
    req.response_mode = mode


def check_syntax(req: Authorization) -> None:
    """Malformed requests (RFC 6749 section 4.1.2.1): repeated or missing parameters."""
    params = req.params
    if params.get("__duplicate__"):
        req.fail("invalid_request", f"parameter {params['__duplicate__']} given more than once")
    if not params.get("response_type"):
        req.fail("invalid_request", "response_type is required")
    if params["response_type"] != "code":
        req.fail("unsupported_response_type", "only response_type=code is supported")
    prompts = (params.get("prompt") or "").split()
    if any(p not in ("none", "login", "consent", "select_account") for p in prompts):
        req.fail("invalid_request", "unsupported prompt value")
    if "none" in prompts and len(prompts) > 1:
        req.fail("invalid_request", "prompt=none cannot be combined with other values")


def check_prompt_none_has_session(req: Authorization) -> None:
    """``prompt=none`` and nobody logged in: ``login_required`` (OpenID Connect Core 3.1.2.6)."""
    if "none" in req.prompts and current_sso() is None:
        req.fail("login_required", "the user must log in (no_session)")


def check_request(req: Authorization) -> None:
    """The request's content: our OpenID checks, then Authlib's (scope, PKCE S256)."""
    settings = current_app.extensions["idp.settings"]
    try:
        check_openid_parameters(req.params)
        stored = StoredRequest(req.params, settings.issuer + "/authorize", settings.production)
        req.grant = current_app.extensions["idp.oauth"].get_authorization_grant(stored)
        req.grant.validate_authorization_request()
    except AuthorizationFailure as exc:
        req.fail(exc.error, exc.description)
    except OAuth2Error as exc:
        req.fail(exc.error, exc.description or exc.error)


def read_claims_and_level(req: Authorization) -> None:
    settings = current_app.extensions["idp.settings"]
    req.claims_request = claims_mod.parse_claims_request(req.params.get("claims"))
    # Claims asked for by name widen the grant to the scopes that release them, within
    # what the client may have: the consent page then shows them, and nothing else leaks.
    req.grant.request.scope = claims_mod.scope_with_claims(
        req.grant.request.scope or "", req.claims_request, req.client.settings.scopes
    )
    req.required_level = required_level_for(req.client, req.params, req.claims_request)
    if req.params.get("ui_locales"):
        g.ui_locale = pick_from_ui_locales(req.params["ui_locales"], settings.languages)
        if req.tx is not None:
            req.tx["ui_locale"] = g.ui_locale


def check_session(req: Authorization) -> None:
    """Is the SSO session good enough? Else log in, ``login_required``, or unmet requirements."""
    reason = login_reason(current_sso(), req.client, req.params, req.prompts, req.required_level, req.tx)
    if reason is None:
        return
    if not reachable(req.client, req.required_level):
        # No method offered to this client reaches the level: no chooser with nothing on it.
        req.fail(
            "unmet_authentication_requirements",
            "no login method of this client reaches the requested authentication level",
        )
    if "none" in req.prompts:
        req.fail("login_required", f"the user must log in ({reason})")
    tx = req.tx or new_transaction(req.params, req.client, req.required_level)
    tx["reason"] = reason
    save_transaction(tx)
    raise Answer(redirect(url_for("login.choose", tx_id=tx["id"]), 302))


def check_consent(req: Authorization) -> None:
    _, account = current_sso()
    scope = req.grant.request.scope or ""
    if needs_consent(req.client, account.id, scope, req.prompts, req.tx):
        if "none" in req.prompts:
            req.fail("consent_required", "the user must approve this application")
        tx = req.tx or new_transaction(req.params, req.client, req.required_level)
        tx["scope"] = scope
        save_transaction(tx)
        raise Answer(redirect(url_for("authorize.consent", tx_id=tx["id"]), 302))


def issue_code(req: Authorization) -> None:
    """The code, bound to client, redirect URI and PKCE challenge; the RP joins the session."""

    settings = current_app.extensions["idp.settings"]
    sso_row, account = current_sso()
    grant, client = req.grant, req.client
    # A passkey session may count for less at this client than it reached (session_level).
    level = settings.session_level(sso_row.level, sso_row.methods, client.settings) or sso_row.level
    grant.request.user = AuthContext(
        account=account,
        session=sso_row,
        acr=settings.acr_for(level),
        claims_request=req.claims_request,
    )
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, grant.request)
    add_client(sso_row, client.client_id)
    if req.tx is not None:
        drop_transaction(req.tx["id"])
    audit.record("authorize", account_id=account.id, client_id=client.client_id, level=sso_row.level)
    raise Answer(respond(req.redirect_uri, [("code", code), ("state", req.state)], req.response_mode))


PIPELINE = (
    resolve_pushed_request,
    check_client_and_redirect_uri,
    check_response_mode,
    check_pushed_if_required,
    check_syntax,
    check_prompt_none_has_session,
    check_request,
    read_claims_and_level,
    check_session,
    check_consent,
    issue_code,
)


def check_openid_parameters(params: dict[str, str]) -> None:
    if "request" in params:
        raise AuthorizationFailure("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise AuthorizationFailure("request_uri_not_supported", "request_uri is not supported")
    scope = (params.get("scope") or "").split()
    if "openid" not in scope:
        raise AuthorizationFailure("invalid_scope", "the openid scope is required")
    if "dpop_jkt" in params and not JKT.fullmatch(params["dpop_jkt"]):
        # RFC 9449 section 10: the base64url SHA-256 thumbprint (RFC 7638) of the client's DPoP key
        raise AuthorizationFailure("invalid_request", "dpop_jkt is not a JWK SHA-256 thumbprint")
    if "max_age" in params:
        value = params["max_age"]
        if not (value.isascii() and value.isdigit()) or len(value) > 10:
            raise AuthorizationFailure("invalid_request", "max_age must be a non-negative integer")
    try:
        claims_mod.parse_claims_request(params.get("claims"))
    except ValueError as exc:
        raise AuthorizationFailure("invalid_request", str(exc)) from None
    if params.get("id_token_hint"):
        try:
            current_app.extensions["idp.keys"].verify_hint(params["id_token_hint"])
        except Exception:  # noqa: BLE001 - any failure: not a hint we issued
            raise AuthorizationFailure(
                "invalid_request", "id_token_hint is not an ID token from this provider"
            ) from None


# ---------------------------------------------------------------------------
# Consent
# ---------------------------------------------------------------------------


@bp.route("/consent/<tx_id>", methods=["GET", "POST"])
def consent(tx_id: str):
    from flask_wtf import FlaskForm

    tx = get_transaction(tx_id)
    sso = current_sso()
    if tx is None or sso is None or "scope" not in tx:
        return error_page(
            _("This sign-in took too long or was already used. Please start again from the application.")
        )
    client = current_app.extensions["idp.clients"].get(tx["client_id"])
    form = FlaskForm()
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400)
        row, account = sso
        if request.form.get("decision") != "allow":
            drop_transaction(tx_id)
            audit.record("consent", "denied", account_id=account.id, client_id=client.client_id)
            params = tx["params"]
            return respond(
                params["redirect_uri"],
                [
                    ("error", "access_denied"),
                    ("error_description", "the user refused"),
                    ("state", params.get("state")),
                ],
                params.get("response_mode") or "query",
            )
        existing = db.session.get(Consent, (account.id, client.client_id))
        if existing is None:
            db.session.add(Consent(account_id=account.id, client_id=client.client_id, scope=tx["scope"]))
        else:
            existing.scope = " ".join(sorted(set(existing.scope.split()) | set(tx["scope"].split())))
            existing.granted_at = int(time.time())
        db.session.commit()
        audit.record("consent", account_id=account.id, client_id=client.client_id, scope=tx["scope"])
        tx["consented"] = True
        save_transaction(tx)
        return redirect(url_for("authorize.resume", tx_id=tx_id), 303)
    return render_template(
        "authorize/consent.html", client=client, scopes=tx["scope"].split(), form=form, tx_id=tx_id
    )


def _language_of_transaction() -> None:
    """Pages of a login transaction (login, consent) speak the request's ``ui_locales``."""
    tx_id = (request.view_args or {}).get("tx_id")
    if tx_id and "ui_locale" not in g:
        tx = get_transaction(tx_id)
        if tx is not None and tx.get("ui_locale"):
            g.ui_locale = tx["ui_locale"]


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.before_request(_language_of_transaction)
