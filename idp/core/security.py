"""HTTP security headers for every response (OWASP ASVS V14, RFC 9700 section 4.16).

Pages get a strict Content-Security-Policy without inline script,
``frame-ancestors 'none'``, ``Referrer-Policy: no-referrer`` and
``Cache-Control: no-store``; HSTS in production. A view that must post a form
to a relying party (``response_mode=form_post``) widens ``form-action`` to
exactly that target through :func:`allow_form_action`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, g, request
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

CACHEABLE_ENDPOINTS = {"discovery.jwks", "discovery.configuration", "static"}


def local_path(target: object, default: str = "/") -> str:
    """``target`` if it is a path on this provider, else ``default`` (no open redirects).

    Browsers drop tabs and newlines from URLs and read a backslash as a slash,
    so ``/\t/evil.example`` would leave the site: any control character,
    whitespace or backslash is refused, then the path must have no scheme or host.
    """
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2048:
        return default
    if "\\" in target or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or target.startswith("//"):
        return default
    return target


def allow_form_action(url: str) -> None:
    parts = urlsplit(url)
    g.form_action = f"{parts.scheme}://{parts.netloc}"


def _source(uri: str) -> str:
    """The CSP source expression for a redirect URI; a loopback one may use any port (RFC 8252 7.3)."""
    parts = urlsplit(uri)
    if not parts.netloc:
        return f"{parts.scheme}:"  # a native app's private-use scheme
    if parts.hostname in ("127.0.0.1", "::1") and parts.scheme == "http":
        return f"http://{parts.netloc.rsplit(':', 1)[0] if parts.port else parts.netloc}:*"
    return f"{parts.scheme}://{parts.netloc}"


def redirect_sources(app: Flask) -> str:
    """Where a form of ours may end up: Chromium applies form-action to every redirect after a POST,
    and the last POST of a login (password, SMS code, consent, required action) redirects to the RP."""
    sources = {
        _source(uri)
        for c in app.extensions["idp.clients"].all()
        for uri in (*c.settings.redirect_uris, *c.settings.post_logout_redirect_uris)
    }
    return " ".join(sorted(sources))


csrf = CSRFProtect()

# Endpoints that relying parties call directly (no browser form of ours behind them).
CSRF_EXEMPT = (
    "token.token",
    "token.revoke",
    "token.introspect",
    "userinfo.userinfo",
    "authorize.authorize",
    "logout.logout",
)


def exempt_protocol_endpoints(app: Flask) -> None:
    for endpoint in CSRF_EXEMPT:
        view = app.view_functions.get(endpoint)
        if view is not None:
            csrf.exempt(view)


def init_app(app: Flask) -> None:
    production = app.extensions["idp.settings"].production
    trusted = app.extensions["idp.settings"].trusted_proxies
    if trusted:
        # X-Forwarded-For/-Proto/-Host from that many proxies in front of us, no more.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted, x_proto=trusted, x_host=trusted)
    csrf.init_app(app)
    redirects = redirect_sources(app)

    page_csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' http://127.0.0.1:* http://localhost:*; font-src 'self'; "
        "form-action {form_action}; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )
    # Not a page (JSON, the JWKS, static files): nothing to run, load or frame.
    data_csp = "default-src 'none'; frame-ancestors 'none'"
    api = [  # JSON from the protocol endpoints: the OWASP REST set
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
    ]
    if production:
        api.append(("Strict-Transport-Security", "max-age=63072000; includeSubDomains"))
    # Documents also get these: they make requests (Referer) and open windows.
    document = [*api, ("Referrer-Policy", "no-referrer"), ("Cross-Origin-Opener-Policy", "same-origin")]

    @app.after_request
    def _headers(response):
        h = response.headers
        present = {name.lower() for name, _value in h.items()}
        mimetype = response.mimetype
        if mimetype == "text/html":
            form_action = " ".join(filter(None, ["'self'", redirects, g.get("form_action")]))
            added = [("Content-Security-Policy", page_csp.format(form_action=form_action)), *document]
        else:
            added = [("Content-Security-Policy", data_csp), *(api if mimetype.endswith("json") else document)]
        if request.endpoint not in CACHEABLE_ENDPOINTS:
            added.append(("Cache-Control", "no-store"))
        for name, value in added:
            if name.lower() not in present:
                h.add(name, value)
        return response
