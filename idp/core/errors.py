"""The one place that maps exceptions to OAuth error responses and HTML error pages.

Internals never leak to a relying party or a browser: an unexpected error is
logged with its traceback and answered with a generic page (or a JSON
``server_error`` for API endpoints), never a stack trace.
"""

from __future__ import annotations

import logging

from authlib.oauth2 import OAuth2Error
from flask import Flask, current_app, jsonify, render_template, request
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from idp.core.storage import db

log = logging.getLogger(__name__)

API_PREFIXES = ("/token", "/userinfo", "/revoke", "/introspect", "/jwks", "/.well-known")


def wants_json() -> bool:
    return request.path.startswith(API_PREFIXES)


def error_page(title: str, message: str, status: int = 400):
    return render_template("error.html", title=title, message=message, status=status), status


def http_error_text(code: int | None) -> tuple[str, str]:
    """The translated title and message of an HTTP error page (never Werkzeug's English text)."""
    pages = {
        404: (
            _("Page not found"),
            _(
                "This page does not exist or is no longer available. Check the address, or go back "
                "to the service you came from."
            ),
        ),
        405: (
            _("This action is not possible here"),
            _("This page cannot be used this way. Please go back and try again."),
        ),
        413: (_("Too much data"), _("What you sent is too large. Please go back and try again.")),
        429: (_("Too many attempts"), _("Please wait a minute and try again.")),
        500: (_("Something went wrong"), _("Please try again in a moment.")),
        503: (
            _("Service temporarily unavailable"),
            _("The service is busy or under maintenance. Please try again in a few minutes."),
        ),
    }
    if code in pages:
        return pages[code]
    if code and code >= 500:
        return pages[500]
    return _("This request could not be handled"), _("Please go back and try again.")


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
        title, message = http_error_text(exc.code)
        response = current_app.make_response(error_page(title, message, exc.code or 500))
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if exc.code == 503 and getattr(exc, "retry_after", None):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)

        db.session.rollback()
        if wants_json():
            return jsonify(
                error="server_error", error_description="The server could not handle the request."
            ), 500
        return error_page(_("Something went wrong"), _("Please try again in a moment."), 500)
