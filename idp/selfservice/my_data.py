"""Self-service privacy rights on the account pages: "download my data" (GDPR art. 15
and 20) and "close my account" (art. 17).

Both need a recent full login (two factors, or itsme / eID): the export is the
whole file on a person, closing cannot be undone. Closing asks the person to
confirm on the page, erases the account (:mod:`idp.selfservice.personal_data`:
every relying party is told by back-channel logout), ends the browser session
and sends a confirmation e-mail to the address the account had.
"""

from __future__ import annotations

import json
import time

from flask import Blueprint, Flask, Response, render_template, request, session
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from wtforms import BooleanField
from wtforms.validators import DataRequired

from idp.core import audit
from idp.login.contacts import lang_of
from idp.selfservice.account import _guard
from idp.selfservice.personal_data import erase_account, export_account
from idp.services.notify import send_email

bp = Blueprint("my_data", __name__, url_prefix="/account")


class CloseForm(FlaskForm):
    confirm = BooleanField(validators=[DataRequired()])


@bp.route("/data")
def download():
    sso, back = _guard(fresh=True)
    if back:
        return back
    _row, account = sso
    document = export_account(account)
    audit.record("data_exported", account_id=account.id, actor="self")
    stamp = time.strftime("%Y%m%d", time.gmtime(document["exported_at"]))
    return Response(
        json.dumps(document, indent=2, sort_keys=True, default=str),
        mimetype="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="my-data-{stamp}.json"',
            "Cache-Control": "no-store",
        },
    )


@bp.route("/close", methods=["GET", "POST"])
def close():
    sso, back = _guard(fresh=True)
    if back:
        return back
    _row, account = sso
    form = CloseForm()
    error = None
    if form.validate_on_submit():
        address = account.email if account.email_verified else None
        name, lang = account.display_name, lang_of(account)
        erase_account(account, actor="self")
        session.clear()
        if address:
            send_email(address, "account_closed", lang=lang, name=name)
        return render_template("account/closed.html")
    if request.method == "POST":
        error = _("Please tick the box to confirm that your account must be closed.")
    return render_template("account/close.html", form=form, error=error), 400 if error else 200


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
