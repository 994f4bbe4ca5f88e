"""Relying parties as configured in files, seen through Authlib's ClientMixin.

Redirect URIs match exactly (RFC 9700 section 4.1.3), except that a native
app's loopback redirect may use any port (RFC 8252 section 7.3). Client
secrets are high-entropy values from ``env:``/``file:``, so they are compared
through a fast keyed hash rather than a slow password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, scope_to_list
from flask import Flask

from idp.core.client_settings import ClientSettings

_LOOPBACK = ("127.0.0.1", "::1")
_MAC_KEY = secrets.token_bytes(32)  # per process: secrets are never hashed to disk


def _mac(value: str) -> bytes:
    return hmac.new(_MAC_KEY, value.encode(), hashlib.sha256).digest()


class Client(ClientMixin):
    def __init__(self, settings: ClientSettings) -> None:
        self.settings = settings
        self.client_id = settings.client_id
        self._secret_mac = _mac(settings.client_secret) if settings.client_secret else None
        self.client_metadata = {"post_logout_redirect_uris": list(settings.post_logout_redirect_uris)}

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def is_public(self) -> bool:
        return self.settings.is_public

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # OpenID Connect requires redirect_uri on every request

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(self.settings.scopes)
        return " ".join(s for s in scope_to_list(scope) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if redirect_uri in self.settings.redirect_uris:
            return True
        if not self.is_public:
            return False
        asked = urlsplit(redirect_uri)
        if asked.scheme != "http" or asked.hostname not in _LOOPBACK:
            return False
        for registered in self.settings.redirect_uris:
            reg = urlsplit(registered)
            if (
                reg.scheme == "http"
                and reg.hostname == asked.hostname
                and reg.path == asked.path
                and reg.query == asked.query
                and not asked.fragment
                and not asked.username
            ):
                return True
        return False

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return uri in self.settings.post_logout_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self._secret_mac is None or not isinstance(client_secret, str):
            return False
        return hmac.compare_digest(self._secret_mac, _mac(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method == self.settings.token_endpoint_auth_method
        # revocation / introspection: the same authentication as the token endpoint
        return method == self.settings.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.settings.grant_types


class ClientRegistry:
    def __init__(self, clients: dict[str, ClientSettings]) -> None:
        self._clients = {cid: Client(c) for cid, c in clients.items()}

    def get(self, client_id: str | None) -> Client | None:
        if not isinstance(client_id, str):
            return None
        return self._clients.get(client_id)

    def all(self) -> list[Client]:
        return list(self._clients.values())


def init_app(app: Flask) -> None:
    app.extensions["idp.clients"] = ClientRegistry(app.extensions["idp.settings"].clients)
