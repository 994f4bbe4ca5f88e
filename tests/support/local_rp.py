"""A tiny real relying party for the browser tests: an HTTP server on a free loopback port.

The browser is sent back to it by the provider (``GET /<anything>``: the query
is recorded, the answer is a plain 200 page), and the provider posts
back-channel logout tokens to it (``POST``: the form is recorded). The RP's
server side — redeeming a code, verifying the ID token — goes to the live
provider over HTTP with ``requests``, as a real RP would.

Usage::

    with LocalRP() as rp:
        server = live_server({"clients": rp_clients(rp)})
        url, kept = rp.authorization(server.url, "portal", rp.url + PORTAL_CALLBACK)
        page.goto(url)  # ... log in ...
        tokens = rp.redeem(server.url, kept, rp.callback(server.url, PORTAL_CALLBACK, kept), secret)
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from joserfc import jwt
from joserfc.jwk import KeySet

PORTAL_CALLBACK = "/portal/callback"
APP_CALLBACK = "/callback"  # the app's loopback redirect (RFC 8252 section 7.3: any port)
PORTAL_LOGGED_OUT = "/portal/logged-out"
PORTAL_BCL = "/portal/backchannel-logout"
APP_BCL = "/app/backchannel-logout"


class LocalRP:
    """Records every request it receives: ``hits`` is a list of (method, path, params)."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                rp._record("GET", parts.path, parts.query)
                self._answer(b"<!doctype html><title>RP</title><p>Relying party: request received.</p>")

            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                rp._record("POST", urlsplit(self.path).path, body)
                self._answer(b"")

            def _answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-rp", daemon=True)
        self.http = requests.Session()
        self.http.trust_env = False  # never through a proxy: everything is on the loopback

    def _record(self, method: str, path: str, raw: str) -> None:
        with self._lock:
            self.hits.append((method, path, {k: v[0] for k, v in parse_qs(raw).items()}))

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> LocalRP:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.http.close()

    def __enter__(self) -> LocalRP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what arrived --------------------------------------------------------------
    def received(self, path: str, method: str = "GET") -> list[dict[str, str]]:
        with self._lock:
            return [params for m, p, params in self.hits if m == method and p == path]

    def last(self, path: str) -> dict[str, str]:
        got = self.received(path)
        assert got, f"nothing arrived at {path}"
        return got[-1]

    def logout_tokens(self, path: str) -> list[str]:
        return [form["logout_token"] for form in self.received(path, "POST")]

    # -- the RP's side of the code flow ----------------------------------------------
    def authorization(self, issuer: str, client_id: str, redirect_uri: str, **extra: str) -> tuple[str, dict]:
        """The URL the RP sends the browser to, and what the RP keeps: (url, request + code_verifier)."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email phone",
            "state": secrets.token_urlsafe(12),
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{issuer}/authorize?{urlencode(params)}", {**params, "code_verifier": verifier}

    def redeem(self, issuer: str, kept: dict, code: str, client_secret: str | None = None) -> dict:
        """The token request (PKCE; client_secret_basic for a confidential client); the token response."""
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": kept["redirect_uri"],
            "code_verifier": kept["code_verifier"],
        }
        auth = None
        if client_secret is None:
            data["client_id"] = kept["client_id"]
        else:
            auth = (kept["client_id"], client_secret)
        resp = self.http.post(issuer + "/token", data=data, auth=auth, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def refresh(self, issuer: str, client_id: str, refresh_token: str, client_secret: str | None = None):
        data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        auth = (client_id, client_secret) if client_secret else None
        if auth is None:
            data["client_id"] = client_id
        return self.http.post(issuer + "/token", data=data, auth=auth, timeout=10)

    def userinfo(self, issuer: str, access_token: str) -> dict:
        resp = self.http.get(
            issuer + "/userinfo", headers={"Authorization": f"Bearer {access_token}"}, timeout=10
        )
        assert resp.status_code == 200, resp.text
        return resp.json()

    def verify(self, issuer: str, token: str, kept: dict | None = None) -> dict:
        """An ID token (or logout token) verified against the provider's published keys; its claims."""
        jwks_uri = self.http.get(issuer + "/.well-known/openid-configuration", timeout=10).json()["jwks_uri"]
        keys = KeySet.import_key_set(self.http.get(jwks_uri, timeout=10).json())
        claims = dict(jwt.decode(token, keys, algorithms=["RS256", "PS256", "ES256"]).claims)
        assert claims["iss"] == issuer
        if kept is not None:
            assert claims["aud"] in (kept["client_id"], [kept["client_id"]]), claims
            assert claims["nonce"] == kept["nonce"], claims
        return claims

    def callback(self, issuer: str, path: str, kept: dict) -> str:
        """The code the browser brought back to ``path``, after checking state and iss (RFC 9207)."""
        params = self.last(path)
        assert params.get("state") == kept["state"], params
        assert params.get("iss") == issuer, params
        assert "code" in params, params
        return params["code"]


def rp_clients(rp: LocalRP, backchannel: bool = True) -> list[dict]:
    """The portal (confidential) and the app (public, loopback) of the test config, sending to ``rp``."""
    from tests.conftest import base_config

    portal, app, partner = base_config("http://localhost", "sqlite://", Path("."))["clients"]
    portal = {
        **portal,
        "redirect_uris": [rp.url + PORTAL_CALLBACK],
        "post_logout_redirect_uris": [rp.url + PORTAL_LOGGED_OUT],
    }
    app = {**app, "redirect_uris": ["http://127.0.0.1" + APP_CALLBACK]}
    if backchannel:
        portal["backchannel_logout_uri"] = rp.url + PORTAL_BCL
        app["backchannel_logout_uri"] = rp.url + APP_BCL
    return [portal, app, partner]
