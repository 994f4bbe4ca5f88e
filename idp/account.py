"""The account pages at the provider: who am I, my sessions, my connected apps.

Reached from the portal and the app; every page needs a live SSO session.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, abort, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from . import audit
from .sessions import current_sso
from .storage import Consent, SsoSession, db

bp = Blueprint("account", __name__, url_prefix="/account")


def require_login():
    sso = current_sso()
    if sso is None:
        return None
    return sso


@bp.route("/")
def home():
    sso = require_login()
    if sso is None:
        return redirect(url_for("login.choose", tx_id="-"), 302)
    row, account = sso
    now = int(time.time())
    sessions = db.session.scalars(
        select(SsoSession).where(SsoSession.account_id == account.id, SsoSession.ended_at.is_(None),
                                 SsoSession.expires_at > now).order_by(SsoSession.created_at.desc())
    ).all()
    consents = db.session.scalars(select(Consent).where(Consent.account_id == account.id)).all()
    from flask import current_app

    clients = current_app.extensions["idp.clients"]
    apps = [(c, clients.get(c.client_id)) for c in consents]
    return render_template("account/home.html", account=account, current=row, sessions=sessions, apps=apps,
                           form=FlaskForm())


@bp.route("/sessions/<sid>/end", methods=["POST"])
def end_session(sid: str):
    sso = require_login()
    form = FlaskForm()
    if sso is None or not form.validate_on_submit():
        abort(400)
    _row, account = sso
    target = db.session.get(SsoSession, sid)
    if target is None or target.account_id != account.id:
        abort(404)
    from .logout import end_sso

    end_sso(target, reason="ended_by_user")
    return redirect(url_for("account.home"), 303)


@bp.route("/apps/<client_id>/revoke", methods=["POST"])
def revoke_app(client_id: str):
    sso = require_login()
    form = FlaskForm()
    if sso is None or not form.validate_on_submit():
        abort(400)
    _row, account = sso
    row = db.session.get(Consent, (account.id, client_id))
    if row is not None:
        db.session.delete(row)
        from .oauth import revoke_grant
        from .storage import Grant

        for grant in db.session.scalars(select(Grant).where(Grant.account_id == account.id,
                                                            Grant.client_id == client_id)):
            revoke_grant(grant.id, "consent_revoked")
        db.session.commit()
        audit.record("consent_revoked", account_id=account.id, client_id=client_id)
    return redirect(url_for("account.home"), 303)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.route("/")
    def index():
        return redirect(url_for("account.home"), 302)

    _ = request
