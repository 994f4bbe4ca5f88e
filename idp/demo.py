"""A small demo relying party at ``/demo``, in development only.

It logs in through the provider like any confidential web client (code flow
with PKCE and nonce, over real HTTP to the token and userinfo endpoints) and
shows the ID token claims and the userinfo answer, plus the development
outbox, so a newcomer can try the whole flow. The settings validation
refuses ``[demo] enabled = true`` in production.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets

import requests
from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session, url_for
from flask_wtf.csrf import validate_csrf

from idp.core.client_settings import LOGIN_METHODS, SCOPES, ClientSettings
from idp.core.settings import Settings, _dev_secret

bp = Blueprint("demo", __name__, url_prefix="/demo")
CLIENT_ID = "demo"


def with_demo_client(settings: Settings) -> Settings:
    if CLIENT_ID in settings.clients:
        return settings
    client = ClientSettings(
        client_id=CLIENT_ID,
        name="Demo relying party",
        type="confidential",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name, not a secret
        client_secret=_dev_secret(settings.instance_dir, "demo_client_secret"),
        jwks=None,
        redirect_uris=(settings.issuer + "/demo/callback",),
        post_logout_redirect_uris=(settings.issuer + "/demo/",),
        backchannel_logout_uri=None,
        backchannel_logout_session_required=True,
        scopes=SCOPES,
        methods=LOGIN_METHODS,
        min_level="low",
        first_party=True,
        grant_types=("authorization_code", "refresh_token"),
    )
    return dataclasses.replace(settings, clients={**settings.clients, CLIENT_ID: client})


def _client():
    return current_app.extensions["idp.settings"].clients[CLIENT_ID]


@bp.route("/")
def index():
    outbox = []
    path = current_app.extensions["idp.settings"].sms.outbox
    # The outbox holds live codes and links: shown only to a browser on this machine.
    local = request.remote_addr in ("127.0.0.1", "::1")
    if local and path is not None and path.exists():
        outbox = [json.loads(line) for line in path.read_text().splitlines()[-10:] if line.strip()][::-1]
    return render_template("demo/index.html", result=session.get("demo_result"), outbox=outbox)


@bp.route("/login", methods=["POST"])
def login():

    validate_csrf(request.form.get("csrf_token"))
    settings = current_app.extensions["idp.settings"]
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    session["demo"] = {"verifier": verifier, "state": state, "nonce": nonce}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": _client().redirect_uris[0],
        "scope": "openid profile email phone",
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if request.form.get("acr"):
        params["acr_values"] = (
            settings.acr_for(request.form["acr"]) if request.form["acr"] in settings.acr_values else ""
        )
    return redirect(settings.issuer + "/authorize?" + requests.compat.urlencode(params), 303)


@bp.route("/callback")
def callback():
    settings = current_app.extensions["idp.settings"]
    pending = session.pop("demo", None)
    if pending is None or request.args.get("state") != pending["state"]:
        abort(400, "state mismatch")
    if "error" in request.args:
        session["demo_result"] = {
            "error": request.args.get("error"),
            "description": request.args.get("error_description"),
        }
        return redirect(url_for("demo.index"), 303)
    client = _client()
    resp = requests.post(
        settings.issuer + "/token",
        data={
            "grant_type": "authorization_code",
            "code": request.args.get("code", ""),
            "redirect_uri": client.redirect_uris[0],
            "code_verifier": pending["verifier"],
        },
        auth=(CLIENT_ID, client.client_secret),
        timeout=10,
    )
    token = resp.json()
    if resp.status_code != 200:
        session["demo_result"] = {"error": token.get("error"), "description": token.get("error_description")}
        return redirect(url_for("demo.index"), 303)
    claims = current_app.extensions["idp.keys"].verify(token["id_token"], typ="JWT")
    if claims.get("nonce") != pending["nonce"] or claims.get("aud") != CLIENT_ID:
        abort(400, "ID token does not match this login")
    userinfo = requests.get(
        settings.issuer + "/userinfo",
        headers={"Authorization": "Bearer " + token["access_token"]},
        timeout=10,
    ).json()
    session["demo_result"] = {"id_token": claims, "userinfo": userinfo, "id_token_raw": token["id_token"]}
    return redirect(url_for("demo.index"), 303)


@bp.route("/logout", methods=["POST"])
def logout():

    validate_csrf(request.form.get("csrf_token"))
    settings = current_app.extensions["idp.settings"]
    result = session.pop("demo_result", None) or {}
    params = {"post_logout_redirect_uri": _client().post_logout_redirect_uris[0], "client_id": CLIENT_ID}
    if result.get("id_token_raw"):
        params["id_token_hint"] = result["id_token_raw"]
    return redirect(settings.issuer + "/logout?" + requests.compat.urlencode(params), 303)


def init_app(app: Flask) -> None:
    if app.extensions["idp.settings"].demo_enabled:
        app.register_blueprint(bp)
