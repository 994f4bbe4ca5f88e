"""RP-Initiated Logout 1.0 (the ``end_session_endpoint``), with a confirmation page.

Authlib validates the request (the ``id_token_hint`` is ours, ``client_id``
matches its ``aud``, the ``post_logout_redirect_uri`` is registered); on top:

* a bad request — forged or foreign hint, unknown client, an unregistered or
  altered ``post_logout_redirect_uri`` — gets an error page saying why: no
  redirect, and the session is **not** ended (section 4);
* a valid hint for this browser's current session (same ``sub`` and ``sid``)
  logs out at once and redirects to the URI with ``state`` (section 3);
* anything else — no hint, or a hint from another session — asks the person
  (section 2: the OP must ask, as a logout could be forced on them otherwise):
  "Log out of …?", yes or no; the yes is a POST with a CSRF token. A
  cross-site GET or POST therefore never ends a session by itself.

Ending the session is :func:`idp.core.sessions.end_sso`; what that means for the
relying parties (back-channel logout tokens, revoked grants) is in
:mod:`idp.oidc.backchannel`, connected here to the ``sso_ended`` signal.
"""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request, session
from flask_babel import gettext as _
from flask_wtf import FlaskForm

from idp.core.sessions import current_sso, end_sso, sso_ended
from idp.oidc.backchannel import BACKCHANNEL_EVENT, logout_token, on_sso_ended
from idp.oidc.claims import is_subject_of

__all__ = ["BACKCHANNEL_EVENT", "end_sso", "logout_token"]

bp = Blueprint("logout", __name__)


class EndSession(EndSessionEndpoint):
    def get_server_jwks(self):
        return current_app.extensions["idp.keys"].verification_keys()

    def get_algorithms(self):
        return [current_app.extensions["idp.settings"].signing_algorithm]

    def _validate_id_token_hint(self, id_token_hint: str) -> dict:
        """Only an ID token we issued (section 2), expired or not.

        We also require our issuer, the key's own algorithm and ``typ: JWT``, so
        an access token or a logout token signed by the same key is not taken
        for an ID token (RFC 8725 section 3.11).
        """
        try:
            claims = current_app.extensions["idp.keys"].verify_hint(id_token_hint)
        except Exception:  # noqa: BLE001 - any failure: not an ID token of ours
            raise InvalidRequestError("id_token_hint is not an ID token from this provider") from None
        if not isinstance(claims.get("sub"), str) or "aud" not in claims:
            raise InvalidRequestError("id_token_hint is not an ID token from this provider")
        return claims

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without a hint, the person's own "yes" on the confirmation page is what makes
        # the (registered) URI legitimate: see :func:`confirm`.
        return True

    def end_session(self, end_session_request) -> None:
        raise AssertionError("logout ends the session itself")  # pragma: no cover


def _page(template: str, status: int = 200, **context):
    response = current_app.make_response((render_template(template, **context), status))
    response.headers["Cache-Control"] = "no-store"
    return response


def _refused(message: str):
    return _page("error.html", 400, title=_("Logout"), message=message)


def _is_current_session(claims: dict | None, sso) -> bool:
    """The hint was issued in this browser's current SSO session, to its person."""
    if not claims or sso is None:
        return False
    row, account = sso
    return is_subject_of(claims, account) and claims.get("sid") == row.id


def _finish(redirect_uri: str | None):
    if redirect_uri:
        return redirect(redirect_uri, 303)
    return _page("logout/done.html")


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    server = current_app.extensions["idp.oauth"]
    try:
        req = server.validate_endpoint_request("end_session")
    except OAuth2Error as exc:
        return _refused(_("This logout request is not valid: %(reason)s", reason=exc.description))
    if request.values.get("client_id") and req.client is None:
        return _refused(_("Unknown application. You are still logged in."))
    if request.values.get("post_logout_redirect_uri") and not req.redirect_uri:
        return _refused(
            _(
                "The application asked to send you back to an address that is not registered for it."
                " You are still logged in."
            )
        )
    sso = current_sso()
    if sso is None:
        # Nobody to log out here; with a hint the RP proved who it is: send the person back.
        return _finish(req.redirect_uri if req.id_token_claims else None)
    if _is_current_session(req.id_token_claims, sso):
        end_sso(sso[0], reason="rp_initiated_logout")
        session.clear()
        return _finish(req.redirect_uri)
    session["logout"] = {"sid": sso[0].id, "redirect_uri": req.redirect_uri}
    return _page(
        "logout/confirm.html",
        form=FlaskForm(),
        client=req.client,
        service=current_app.extensions["idp.settings"].service_name,
    )


@bp.route("/logout/confirm", methods=["POST"])
def confirm():
    """The person's answer to the confirmation page: a POST with a CSRF token."""
    form = FlaskForm()
    pending = session.get("logout")
    if not form.validate_on_submit() or not pending:
        abort(400)
    session.pop("logout", None)
    sso = current_sso()
    if request.form.get("decision") != "logout":
        return _page("logout/kept.html")
    if sso is not None and sso[0].id == pending["sid"]:
        end_sso(sso[0], reason="rp_initiated_logout")
        session.clear()
    return _finish(pending.get("redirect_uri"))


def init_app(app: Flask) -> None:
    app.extensions["idp.oauth"].register_endpoint(EndSession)
    sso_ended.connect(on_sso_ended)
    app.register_blueprint(bp)
