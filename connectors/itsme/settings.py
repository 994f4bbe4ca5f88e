"""Configuration of the itsme connector, read strictly from its TOML table.

The keys mirror what itsme hands out at onboarding (client id, service code,
registered redirect URI, client authentication method) plus our own key
folder. Values come from itsme's integration guide, "Client
authentication" and "Scopes, claims, assurance"; see
``shared/reference/itsme.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit

from connectors.base import LEVELS
from connectors.config import ConfigTable

ACR_BASIC = "http://itsme.services/v2/claim/acr_basic"
ACR_ADVANCED = "http://itsme.services/v2/claim/acr_advanced"

DISCOVERY_URLS = {
    "e2e": "https://idp.e2e.itsme.services/v2/.well-known/openid-configuration",
    "production": "https://idp.prd.itsme.services/v2/.well-known/openid-configuration",
}
DEFAULT_SCOPES = ("profile", "email", "phone", "address", "eid")
DEFAULT_LEVELS = MappingProxyType({ACR_BASIC: "substantial", ACR_ADVANCED: "high"})
CLIENT_AUTH_METHODS = ("private_key_jwt", "client_secret_post")

_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # RFC 6749 section 3.3 scope-token
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback_http(url: str) -> bool:
    """Plain http is accepted only on the loopback interface (development, tests)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS


def _check_url(t: ConfigTable, name: str, url: str | None) -> None:
    if url is None:
        return
    parts = urlsplit(url)
    if not parts.netloc or parts.fragment:
        t.error(name, "must be an absolute URL without a fragment")
    elif parts.scheme != "https" and not is_loopback_http(url):
        t.error(name, "must use https (plain http only on 127.0.0.1 or localhost)")


@dataclass(frozen=True)
class ItsmeSettings:
    """Everything the connector needs, validated once at start-up."""

    environment: str
    discovery_url: str
    client_id: str
    service_code: str
    redirect_uri: str
    keys_dir: Path
    keys_passphrase: str = field(repr=False)
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    claims: tuple[str, ...] = ()
    client_auth: str = "private_key_jwt"
    client_secret: str | None = field(default=None, repr=False)
    timeout: float = 5
    levels: Mapping[str, str] = field(default_factory=lambda: DEFAULT_LEVELS)
    jwks_max_age: int = 3600

    @classmethod
    def from_table(cls, t: ConfigTable) -> ItsmeSettings:
        """Read the ``[connectors.itsme]`` table; every problem goes to ``t.error``."""
        environment = t.str("environment", choices=("e2e", "production", "custom"))
        discovery_url = t.str("discovery_url", None)
        if discovery_url is None:
            if environment == "custom":
                t.error("discovery_url", 'is required when environment = "custom"')
            discovery_url = DISCOVERY_URLS.get(environment or "", "")
        else:
            _check_url(t, "discovery_url", discovery_url)

        client_id = t.str("client_id")
        service_code = t.str("service_code")
        if service_code is not None and not _SCOPE_TOKEN.match(service_code):
            t.error("service_code", "must be a single word without spaces or quotes")
        redirect_uri = t.str("redirect_uri")
        _check_url(t, "redirect_uri", redirect_uri)

        scopes = t.list("scopes", list(DEFAULT_SCOPES), item=str)  # base.py default item is shadowed
        for i, scope in enumerate(scopes):
            if not _SCOPE_TOKEN.match(scope):
                t.error(f"scopes[{i}]", "is not a valid scope name")
            elif scope == "openid" or scope.startswith("service:"):
                t.error(f"scopes[{i}]", "openid and service:<code> are added automatically")
        claims = t.list("claims", [], item=str)
        for i, claim in enumerate(claims):
            if not claim or any(c.isspace() for c in claim):
                t.error(f"claims[{i}]", "must be a claim name or URI without spaces")

        client_auth = t.str("client_auth", "private_key_jwt", choices=CLIENT_AUTH_METHODS)
        client_secret = t.secret("client_secret", None)
        if client_auth == "client_secret_post" and not t.has("client_secret"):
            t.error("client_secret", "is required when client_auth = client_secret_post")
        elif client_auth != "client_secret_post" and t.has("client_secret"):
            t.error("client_secret", "is only used with client_auth = client_secret_post")
            client_secret = None

        keys_dir = t.path_value("keys_dir", must_exist=False)
        keys_passphrase = t.secret("keys_passphrase")
        timeout = t.int("timeout", 5, min=1, max=60)
        levels = _read_levels(t)
        jwks_max_age = t.int("jwks_max_age", 3600, min=60, max=86400)
        t.finish()
        return cls(
            environment=environment or "",
            discovery_url=discovery_url,
            client_id=client_id or "",
            service_code=service_code or "",
            redirect_uri=redirect_uri or "",
            keys_dir=keys_dir or Path(),
            keys_passphrase=keys_passphrase or "",
            scopes=tuple(scopes),
            claims=tuple(claims),
            client_auth=client_auth,
            client_secret=client_secret,
            timeout=timeout,
            levels=levels,
            jwks_max_age=jwks_max_age,
        )


def _read_levels(t: ConfigTable) -> Mapping[str, str]:
    if not t.has("levels"):
        t.table("levels")
        return DEFAULT_LEVELS
    table = t.table("levels")
    levels: dict[str, str] = {}
    for acr in table.data:
        level = table.str(acr, choices=LEVELS)
        if level is not None:
            levels[acr] = level
    table.finish()
    if not levels:
        t.error("levels", "must map at least one itsme acr value to a level")
    return MappingProxyType(levels)
