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
transaction*; the login pages come back to :func:`resume` when done.
"""

from __future__ import annotations

import logging
import secrets
import time
from urllib.parse import urlencode, urlsplit

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
    session,
    url_for,
)
from flask_babel import gettext as _

from connectors.base import level_rank
from idp.core import audit
from idp.core.security import allow_form_action
from idp.core.sessions import add_client, current_sso
from idp.core.storage import Consent, db
from idp.oidc import claims as claims_mod

log = logging.getLogger(__name__)
bp = Blueprint("authorize", __name__)

MAX_TRANSACTIONS = 5


class StoredRequest(OAuth2Request):
    """An authorization request rebuilt from its parameters (GET, POST or resumed)."""

    def __init__(self, params: dict[str, str], uri: str) -> None:
        super().__init__("GET", uri)
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
# Responses
# ---------------------------------------------------------------------------


def respond(redirect_uri: str, params: list[tuple[str, str]], response_mode: str):
    """Deliver the authorization response (query or form_post), always with ``iss``."""
    params = [p for p in params if p[1] is not None] + [
        ("iss", current_app.extensions["idp.settings"].issuer)
    ]
    if response_mode == "form_post":
        allow_form_action(redirect_uri)
        return render_template("authorize/form_post.html", action=redirect_uri, params=params)
    sep = "&" if "?" in redirect_uri else "?"
    return redirect(redirect_uri + sep + urlencode(params), 302)


def error_page(message: str, status: int = 400):
    return render_template("error.html", title=_("This link cannot be used"), message=message), status


# ---------------------------------------------------------------------------
# Login transactions
# ---------------------------------------------------------------------------


def get_transaction(tx_id: str) -> dict | None:
    txs = session.get("tx") or {}
    tx = txs.get(tx_id)
    settings = current_app.extensions["idp.settings"]
    if tx is None or time.time() - tx["created"] > settings.login_transaction_ttl:
        return None
    return tx


def save_transaction(tx: dict) -> None:
    txs = dict(session.get("tx") or {})
    txs[tx["id"]] = tx
    if len(txs) > MAX_TRANSACTIONS:
        for old in sorted(txs.values(), key=lambda t: t["created"])[: len(txs) - MAX_TRANSACTIONS]:
            txs.pop(old["id"], None)
    session["tx"] = txs


def drop_transaction(tx_id: str) -> None:
    txs = dict(session.get("tx") or {})
    txs.pop(tx_id, None)
    session["tx"] = txs


def login_completed(tx_id: str) -> str:
    """Called by the login pages once the person is logged in; where to go next."""
    tx = get_transaction(tx_id)
    if tx is None:
        return url_for("account.home")
    tx["login_at"] = int(time.time())
    save_transaction(tx)
    return url_for("authorize.resume", tx_id=tx_id)


# ---------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------


def _single_params(source) -> dict[str, str]:
    out = {}
    for key in source:
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
    return process(_single_params(source), tx=None)


@bp.route("/authorize/continue/<tx_id>")
def resume(tx_id: str):
    tx = get_transaction(tx_id)
    if tx is None:
        return error_page(
            _("This sign-in took too long or was already used. Please start again from the application.")
        )
    return process(tx["params"], tx=tx)


def process(params: dict[str, str], tx: dict | None):
    settings = current_app.extensions["idp.settings"]
    clients = current_app.extensions["idp.clients"]
    server = current_app.extensions["idp.oauth"]

    # 1. client and redirect URI: never redirect to something unverified.
    client = clients.get(params.get("client_id"))
    if client is None:
        return error_page(_("The application that sent you here is not known to us."))
    redirect_uri = params.get("redirect_uri")
    if (
        not redirect_uri
        or not client.check_redirect_uri(redirect_uri)
        or params.get("__duplicate__") == "redirect_uri"
    ):
        return error_page(_("The application that sent you here gave an address we do not know."))
    response_mode = params.get("response_mode") or "query"
    state = params.get("state")
    web_redirect = urlsplit(redirect_uri).scheme in ("http", "https")
    if response_mode not in ("query", "form_post") or (response_mode == "form_post" and not web_redirect):
        # form_post needs a web page to post to; an app's private-use scheme cannot receive it.
        return respond(
            redirect_uri,
            [
                ("error", "invalid_request"),
                ("error_description", "unsupported response_mode for this redirect_uri"),
                ("state", state),
            ],
            "query",
        )

    def fail(error: str, description: str):
        audit.record("authorize", "failure", client_id=client.client_id, error=error)
        return respond(
            redirect_uri,
            [("error", error), ("error_description", description), ("state", state)],
            response_mode,
        )

    # 2. the request itself
    try:
        check_openid_parameters(params)
        req = StoredRequest(params, settings.issuer + "/authorize")
        grant = server.get_authorization_grant(req)
        grant.validate_authorization_request()
    except AuthorizationFailure as exc:
        return fail(exc.error, exc.description)
    except OAuth2Error as exc:
        return fail(exc.error, exc.description or exc.error)

    claims_request = claims_mod.parse_claims_request(params.get("claims"))
    # Claims asked for by name widen the grant to the scopes that release them, within
    # what the client may have: the consent page then shows them, and nothing else leaks.
    grant.request.scope = claims_mod.scope_with_claims(
        grant.request.scope or "", claims_request, client.settings.scopes
    )
    prompts = set((params.get("prompt") or "").split())
    required_level = required_level_for(client, params, claims_request)
    if required_level is None:
        return fail("invalid_request", "no login method of this client reaches the requested acr")
    if params.get("ui_locales"):
        from idp.core.i18n import pick_from_ui_locales

        g.ui_locale = pick_from_ui_locales(params["ui_locales"], settings.languages)
        if tx is not None:
            tx["ui_locale"] = g.ui_locale

    # 3. the SSO session
    sso = current_sso()
    reason = login_reason(sso, client, params, prompts, required_level, tx)
    if reason is not None:
        if "none" in prompts:
            return fail("login_required", f"the user must log in ({reason})")
        tx = tx or new_transaction(params, client, required_level)
        tx["reason"] = reason
        save_transaction(tx)
        return redirect(url_for("login.choose", tx_id=tx["id"]), 302)
    sso_row, account = sso

    # 4. consent
    scope = grant.request.scope or ""
    if needs_consent(client, account.id, scope, prompts, tx):
        if "none" in prompts:
            return fail("consent_required", "the user must approve this application")
        tx = tx or new_transaction(params, client, required_level)
        tx["scope"] = scope
        save_transaction(tx)
        return redirect(url_for("authorize.consent", tx_id=tx["id"]), 302)

    # 5. the code
    from idp.oidc.server import AuthContext

    # A passkey session may count for less at this client than it reached (session_level).
    level = settings.session_level(sso_row.level, sso_row.methods, client.settings) or sso_row.level
    grant.request.user = AuthContext(
        account=account, session=sso_row, acr=settings.acr_for(level), claims_request=claims_request
    )
    code = grant.generate_authorization_code()
    grant.save_authorization_code(code, grant.request)
    add_client(sso_row, client.client_id)
    if tx is not None:
        drop_transaction(tx["id"])
    audit.record("authorize", account_id=account.id, client_id=client.client_id, level=sso_row.level)
    return respond(redirect_uri, [("code", code), ("state", state)], response_mode)


def check_openid_parameters(params: dict[str, str]) -> None:
    if params.get("__duplicate__"):
        raise AuthorizationFailure(
            "invalid_request", f"parameter {params['__duplicate__']} given more than once"
        )
    if "request" in params:
        raise AuthorizationFailure("request_not_supported", "request objects are not supported")
    if "request_uri" in params:
        raise AuthorizationFailure("request_uri_not_supported", "request_uri is not supported")
    scope = (params.get("scope") or "").split()
    if "openid" not in scope:
        raise AuthorizationFailure("invalid_scope", "the openid scope is required")
    prompts = (params.get("prompt") or "").split()
    if any(p not in ("none", "login", "consent", "select_account") for p in prompts):
        raise AuthorizationFailure("invalid_request", "unsupported prompt value")
    if "none" in prompts and len(prompts) > 1:
        raise AuthorizationFailure("invalid_request", "prompt=none cannot be combined with other values")
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


def required_level_for(client, params: dict[str, str], claims_request: dict | None) -> str | None:
    """The assurance level this request needs; None if the client cannot reach it."""
    settings = current_app.extensions["idp.settings"]
    required = client.settings.min_level
    asked = [settings.level_for_acr(v) for v in (params.get("acr_values") or "").split()]
    asked += [settings.level_for_acr(v) for v in claims_mod.requested_acr(claims_request)]
    asked = [a for a in asked if a]
    if asked:
        lowest_acceptable = min(asked, key=level_rank)
        if level_rank(lowest_acceptable) > level_rank(required):
            required = lowest_acceptable
    best = max(
        (
            settings.method_level(m, client.settings)
            for m in client.settings.methods
            if settings.methods[m].enabled
        ),
        key=level_rank,
        default=None,
    )
    if best is None or level_rank(best) < level_rank(required):
        # Password + SMS can reach "substantial"; a client asking for more needs itsme/eID.
        return None if best is None else required
    return required


def login_reason(sso, client, params, prompts, required_level, tx) -> str | None:
    """Why a (new) login is needed, or None when the SSO session will do."""
    if sso is None:
        return "no_session"
    row, account = sso
    logged_in_for_this = tx is not None and tx.get("login_at") and row.auth_time >= tx["login_at"] - 5
    if "login" in prompts and not logged_in_for_this:
        return "prompt_login"
    if (
        "max_age" in params
        and int(time.time()) - row.auth_time > int(params["max_age"])
        and not logged_in_for_this
    ):
        return "max_age"
    level = current_app.extensions["idp.settings"].session_level(row.level, row.methods, client.settings)
    if level is None or level_rank(level) < level_rank(required_level):
        return "step_up"
    if not set(row.methods) & set(client.settings.methods):
        return "method_not_allowed"
    hint = params.get("id_token_hint")
    if hint:
        claims = current_app.extensions["idp.keys"].verify_hint(hint)
        if claims.get("sub") != account.sub:
            return "other_user"
    return None


def needs_consent(client, account_id: int, scope: str, prompts: set[str], tx: dict | None) -> bool:
    if client.settings.first_party:
        return False
    if tx is not None and tx.get("consented"):
        return False
    if "consent" in prompts:
        return True
    row = db.session.get(Consent, (account_id, client.client_id))
    return row is None or not set(scope.split()) <= set(row.scope.split())


def new_transaction(params: dict[str, str], client, required_level: str) -> dict:
    settings = current_app.extensions["idp.settings"]
    methods = [m for m in client.settings.methods if m in settings.methods]
    return {
        "id": secrets.token_urlsafe(12),
        "created": int(time.time()),
        "params": params,
        "client_id": client.client_id,
        "required_level": required_level,
        "methods": methods,
        "login_hint": params.get("login_hint"),
        "ui_locale": g.get("ui_locale"),
    }


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
