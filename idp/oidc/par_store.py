"""Pushed authorization requests waiting for the browser (RFC 9126 section 2.2, 4).

A pushed request is kept in the shared store under its ``request_uri`` for
:data:`LIFETIME` seconds; the authorization endpoint takes it once, and only
for the client that pushed it.
"""

from __future__ import annotations

import json
import secrets

from flask import current_app

from idp.core.hashing import digest

PREFIX = "urn:ietf:params:oauth:request_uri:"
LIFETIME = 60  # seconds (FAPI 2.0: under 600)


def _key(request_uri: str) -> str:
    return "par:" + digest(request_uri)


def push(client_id: str, params: dict[str, str]) -> str:
    request_uri = PREFIX + secrets.token_urlsafe(32)
    value = json.dumps({"client_id": client_id, "params": params}).encode()
    current_app.extensions["idp.kv"].set(_key(request_uri), value, LIFETIME)
    return request_uri


def take(request_uri: str, client_id: str | None) -> dict[str, str] | None:
    """The pushed parameters, once; None when unknown, expired, used, or another client's."""
    if not isinstance(request_uri, str) or not request_uri.startswith(PREFIX) or len(request_uri) > 200:
        return None
    raw = current_app.extensions["idp.kv"].pop(_key(request_uri))
    if raw is None:
        return None
    stored = json.loads(raw)
    if stored["client_id"] != client_id:
        return None  # popped all the same: a request_uri shown to the wrong client is burnt
    return stored["params"]
