"""itsme's metadata and signing keys, fetched over HTTP and cached.

OpenID Connect Discovery 1.0 section 4 (the issuer must equal the discovery
URL prefix, section 4.3) and OIDC Core section 10.1.1 (signing key rotation:
on an unknown ``kid`` the JWKS is fetched again). A refetch caused by an
unknown ``kid`` happens at most once per :data:`UNKNOWN_KID_REFETCH_INTERVAL`
so forged tokens cannot drive us into a loop of requests to itsme.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from connectors.base import ConnectorError

from .settings import is_loopback_http

log = logging.getLogger(__name__)

UNKNOWN_KID_REFETCH_INTERVAL = 60
_WELL_KNOWN = "/.well-known/openid-configuration"
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")


@dataclass(frozen=True)
class Metadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_uri: str
    # RFC 9207: when itsme says it sends ``iss`` in authorization responses, one without it is refused
    iss_parameter_supported: bool = False


def fetch(
    http: requests.Session, method: str, url: str, timeout: float, what: str, **kw: Any
) -> requests.Response:
    """One HTTP call to itsme; network trouble and 5xx become ``upstream_unavailable``."""
    try:
        response = http.request(method, url, timeout=timeout, allow_redirects=False, **kw)
    except requests.Timeout as exc:
        raise ConnectorError("upstream_unavailable", f"{what}: timeout") from exc
    except requests.RequestException as exc:
        raise ConnectorError("upstream_unavailable", f"{what}: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise ConnectorError("upstream_unavailable", f"{what}: HTTP {response.status_code}")
    return response


def _json_object(response: requests.Response, what: str) -> dict:
    try:
        data = response.json()
    except ValueError as exc:
        raise ConnectorError("upstream_unavailable", f"{what}: not JSON") from exc
    if not isinstance(data, dict):
        raise ConnectorError("upstream_unavailable", f"{what}: not a JSON object")
    return data


def _secure_url(url: Any) -> bool:
    return isinstance(url, str) and (url.startswith("https://") or is_loopback_http(url))


class Provider:
    """Cached discovery document and JWKS of one itsme environment (thread-safe)."""

    def __init__(
        self,
        discovery_url: str,
        http: requests.Session,
        timeout: float,
        max_age: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.discovery_url = discovery_url
        self.http = http
        self.timeout = timeout
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._metadata: Metadata | None = None
        self._metadata_at = 0.0
        self._keys: dict[str | None, RSAKey] = {}
        self._keys_at: float | None = None
        self._last_forced_refetch: float | None = None

    def metadata(self) -> Metadata:
        now = self.clock()
        with self._lock:
            if self._metadata is None or now - self._metadata_at >= self.max_age:
                self._metadata = self._fetch_metadata()
                self._metadata_at = now
            return self._metadata

    def _fetch_metadata(self) -> Metadata:
        response = fetch(self.http, "GET", self.discovery_url, self.timeout, "discovery")
        if response.status_code != 200:
            raise ConnectorError("upstream_unavailable", f"discovery: HTTP {response.status_code}")
        doc = _json_object(response, "discovery")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer.rstrip("/") + _WELL_KNOWN != self.discovery_url:
            raise ConnectorError("upstream_unavailable", "discovery: issuer does not match the discovery URL")
        for name in _ENDPOINTS:
            if not _secure_url(doc.get(name)):
                raise ConnectorError("upstream_unavailable", f"discovery: {name} missing or not https")
        return Metadata(
            issuer,
            *(doc[name] for name in _ENDPOINTS),
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported") is True,
        )

    def signing_key(self, kid: str | None) -> RSAKey | None:
        """itsme's public signing key for ``kid``; refetches the JWKS once on an unknown ``kid``."""
        metadata = self.metadata()
        now = self.clock()
        with self._lock:
            if self._keys_at is None or now - self._keys_at >= self.max_age:
                self._load_keys(metadata, now)
            elif kid not in self._keys and (
                self._last_forced_refetch is None
                or now - self._last_forced_refetch >= UNKNOWN_KID_REFETCH_INTERVAL
            ):
                self._last_forced_refetch = now
                log.info("itsme JWKS: unknown kid, fetching the key set again")
                self._load_keys(metadata, now)
            if kid is None and len(self._keys) == 1:
                # a token without kid is fine when itsme publishes a single key (RFC 7515 section 4.1.4)
                return next(iter(self._keys.values()))
            return self._keys.get(kid)

    def _load_keys(self, metadata: Metadata, now: float) -> None:
        response = fetch(self.http, "GET", metadata.jwks_uri, self.timeout, "jwks")
        if response.status_code != 200:
            raise ConnectorError("upstream_unavailable", f"jwks: HTTP {response.status_code}")
        keys = _json_object(response, "jwks").get("keys")
        if not isinstance(keys, list):
            raise ConnectorError("upstream_unavailable", "jwks: no keys")
        found: dict[str | None, RSAKey] = {}
        for jwk in keys:
            if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or jwk.get("use", "sig") != "sig":
                continue
            public = {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
            try:
                found[jwk.get("kid")] = RSAKey.import_key(public)
            except (JoseError, ValueError, TypeError):  # one odd key must not hide the others
                log.warning("itsme JWKS: skipping a key that cannot be imported")
        self._keys = found
        self._keys_at = now
