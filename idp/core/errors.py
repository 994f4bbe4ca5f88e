"""The one place that maps exceptions to OAuth error responses and HTML error pages.

Internals never leak to a relying party or a browser: an unexpected error is
logged with its traceback and answered with a generic page (or a JSON
``server_error`` for API endpoints), never a stack trace.
"""

from __future__ import annotations

import logging

from authlib.oauth2 import OAuth2Error
from flask import Flask, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from idp.core.storage import db

log = logging.getLogger(__name__)

API_PREFIXES = (
    "/token",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/jwks",
    "/.well-known",
    "/healthz",
    "/readyz",
    "/metrics",
)


def wants_json() -> bool:
    return request.path.startswith(API_PREFIXES)


def error_page(title: str, message: str, status: int = 400):
    return render_template("error.html", title=title, message=message), status


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc):
        return error_page(_("Your session expired"), _("Please go back and try again."), 400)

    @app.errorhandler(OAuth2Error)
    def _oauth(exc: OAuth2Error):
        status, body, headers = exc()
        return jsonify(dict(body)), status, headers

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if wants_json():
            return jsonify(error="invalid_request", error_description=exc.description), exc.code
        return error_page(str(exc.code), exc.description or exc.name, exc.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)

        db.session.rollback()
        if wants_json():
            return jsonify(
                error="server_error", error_description="The server could not handle the request."
            ), 500
        return error_page(_("Something went wrong"), _("Please try again in a moment."), 500)
