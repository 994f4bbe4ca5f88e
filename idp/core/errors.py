"""The one place that maps exceptions to OAuth error responses and HTML error pages.

Internals never leak to a relying party or a browser: an unexpected error is
logged with its traceback and answered with a generic page (or a JSON
``server_error`` for API endpoints), never a stack trace.

* Bad input refused by :mod:`idp.core.inputs` gets the protocol's JSON error
  (``invalid_request``, or ``invalid_client`` with ``WWW-Authenticate``) on the
  API endpoints and a 400 page elsewhere.
* A dependency that is down (the database, the shared store) gets 503 with
  ``Retry-After``: JSON ``temporarily_unavailable`` on the API endpoints
  (RFC 6749 section 4.1.2.1 names that code), a translated page elsewhere. The
  page must render without the browser session, which lives in the shared store.
* A blueprint whose endpoints speak their own JSON (the eID bridge's
  challenge and verify) declares them with :func:`register_json_endpoints`
  instead of registering handlers of its own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

import sqlalchemy.exc
from authlib.oauth2 import OAuth2Error
from flask import Flask, Response, current_app, jsonify, render_template, request, session
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from idp.core.inputs import BadInput
from idp.core.kv import StoreUnavailable
from idp.core.storage import db

log = logging.getLogger(__name__)

API_PREFIXES = (
    "/token",
    "/par",
    "/userinfo",
    "/revoke",
    "/introspect",
    "/jwks",
    "/.well-known",
    "/healthz",
    "/readyz",
    "/metrics",
)
RETRY_AFTER = "30"
_JSON_ENDPOINTS = "idp.json_error_endpoints"
# RFC 6749 section 5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_NOT_IN_DESCRIPTION = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")

# What a blueprint's JSON endpoints answer for a kind of failure: answer(kind, status).
JsonAnswer = Callable[[str, int], object]


def describe(value: object, limit: int = 40) -> str:
    """A client's value made safe to echo in an ``error_description``: allowed characters, bounded."""
    text = _NOT_IN_DESCRIPTION.sub("?", str(value))
    return text if len(text) <= limit else text[:limit] + "..."


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


def register_json_endpoints(app: Flask, endpoints: Iterable[str], answer: JsonAnswer) -> None:
    """Endpoints whose errors ``answer(kind, status)`` renders; kinds: csrf, bad_request,
    unavailable, server_error."""
    registry = app.extensions.setdefault(_JSON_ENDPOINTS, {})
    for endpoint in endpoints:
        registry[endpoint] = answer


def _own_json(kind: str, status: int):
    answer = current_app.extensions.get(_JSON_ENDPOINTS, {}).get(request.endpoint)
    return None if answer is None else answer(kind, status)


def is_outage(exc: BaseException) -> bool:
    """The database or the shared store cannot be reached (as opposed to a bug)."""
    if isinstance(exc, StoreUnavailable | sqlalchemy.exc.OperationalError | sqlalchemy.exc.TimeoutError):
        return True
    return isinstance(exc, sqlalchemy.exc.DBAPIError) and bool(exc.connection_invalidated)


def _rollback() -> None:
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the database may be the thing that is down
        log.debug("rollback failed", exc_info=True)


def unavailable():
    # The browser session may be what failed: the answer must not try to save it.
    if hasattr(session, "unavailable"):
        session.unavailable = True
    own = _own_json("unavailable", 503)
    if own is not None:
        response = own
    elif wants_json():
        response = (
            jsonify(
                error="temporarily_unavailable",
                error_description="The service is temporarily unavailable; try again later.",
            ),
            503,
        )
    else:
        response = error_page(
            _("Temporarily unavailable"),
            _("This service is temporarily unavailable. Please try again in a few minutes."),
            503,
        )
    body, status = response if isinstance(response, tuple) else (response, 503)
    return body, status, {"Retry-After": RETRY_AFTER}


def turn_unavailable(response: Response) -> None:
    """Make ``response`` the 503 answer in place (the store failed after the view had answered,
    while the browser session was saved: a redirect must not pretend that step was kept)."""
    body, status, headers = unavailable()
    replacement = current_app.make_response((body, status, headers))
    response.status_code = status
    response.set_data(replacement.get_data())
    response.headers.pop("Location", None)
    for name in ("Content-Type", "Retry-After"):
        response.headers[name] = replacement.headers[name]


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def _csrf(exc):
        own = _own_json("csrf", 400)
        if own is not None:
            return own
        return error_page(_("Your session expired"), _("Please go back and try again."), 400)

    @app.errorhandler(OAuth2Error)
    def _oauth(exc: OAuth2Error):
        status, body, headers = exc()
        return jsonify(dict(body)), status, headers

    @app.errorhandler(BadInput)
    def _bad_input(exc: BadInput):
        own = _own_json("bad_request", 400)
        if own is not None:
            return own
        if wants_json():
            headers = {"WWW-Authenticate": exc.challenge or 'Basic realm="idp"'} if exc.code == 401 else {}
            if request.path == "/token":
                headers["Pragma"] = "no-cache"  # RFC 6749 section 5.1
            return jsonify(error=exc.error, error_description=exc.description), exc.code, headers
        return error_page(
            _("This request cannot be used"),
            _("The request holds characters or values we do not accept."),
            400,
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        own = _own_json("bad_request" if (exc.code or 500) < 500 else "server_error", exc.code or 500)
        if own is not None:
            return own
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
        _rollback()
        if is_outage(exc):
            log.error("dependency unavailable on %s %s: %s", request.method, request.path, exc)
            return unavailable()
        log.exception("unexpected error on %s %s", request.method, request.path)
        own = _own_json("server_error", 500)
        if own is not None:
            return own
        if wants_json():
            return jsonify(
                error="server_error", error_description="The server could not handle the request."
            ), 500
        return error_page(_("Something went wrong"), _("Please try again in a moment."), 500)
