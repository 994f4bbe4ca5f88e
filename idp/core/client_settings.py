"""The relying parties' settings: one ``[[clients]]`` table each, in the provider file or
the clients file it names (``provider.clients_file``), read strictly like every table.

Redirect URIs are https (loopback http in development, a reverse-domain private-use
scheme for a native app, RFC 8252 §7.1); a confidential client authenticates with a
secret of at least 32 characters or a key (``private_key_jwt``); a public client with none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from connectors.base import LEVELS
from connectors.config import ConfigTable
from idp.core.disclosure import read_client_disclosure

LOGIN_METHODS = ("password", "itsme", "eid", "contract", "passkey", "mock")
SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


@dataclass(frozen=True)
class ClientSettings:
    client_id: str
    name: str
    type: str  # "confidential" | "public"
    token_endpoint_auth_method: str
    client_secret: str | None
    jwks: dict | None
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    backchannel_logout_uri: str | None
    backchannel_logout_session_required: bool
    scopes: tuple[str, ...]
    methods: tuple[str, ...]
    min_level: str
    first_party: bool
    grant_types: tuple[str, ...]
    disabled_methods_message: dict[str, str] = field(default_factory=dict)
    subject_type: str = "public"  # or "pairwise" (OpenID Connect Core 8)
    sector_identifier: str | None = None  # pairwise: clients of one sector share a sub
    claims: tuple[str, ...] | None = None  # at most these claims, whatever the scopes
    passkey_satisfies_sms: bool = True  # a passkey login needs no SMS code after it
    passkey_high: bool = False  # a passkey login may reach "high" (when [methods.passkey] says so)
    require_pkce: bool = True
    require_pushed_authorization_requests: bool = False  # RFC 9126 section 6
    require_dpop: bool = False  # RFC 9449: sender-constrained access tokens
    profile: str | None = None  # "fapi2": the FAPI 2.0 Security Profile's rules at once

    @property
    def fapi2(self) -> bool:
        return self.profile == "fapi2"

    @property
    def is_public(self) -> bool:
        return self.type == "public"


def check_url(
    t: ConfigTable, key: str, value: str | None, production: bool, allow_custom_scheme=False
) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.fragment:
        t.error(key, "must not contain a fragment")
    if parts.scheme == "https" and parts.netloc:
        return
    if parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "[::1]", "::1"):
        return
    if parts.scheme == "http" and not production:
        return
    if allow_custom_scheme and parts.scheme not in ("http", "https", "") and "." in parts.scheme:
        return  # private-use scheme of a native app (RFC 8252 section 7.1): reverse domain name
    t.error(
        key,
        f"{value!r} must be an https URL"
        + (" or a reverse-domain private-use scheme" if allow_custom_scheme else ""),
    )


def read_client(t: ConfigTable, production: bool) -> ClientSettings | None:
    client_id = t.str("client_id")
    kind = t.str("type", choices=("confidential", "public"))
    default_auth = "none" if kind == "public" else "client_secret_basic"
    auth, secret, jwks = _read_client_auth(t, kind, default_auth)
    redirect_uris = t.list("redirect_uris")
    for i, uri in enumerate(redirect_uris or []):
        check_url(t, f"redirect_uris[{i}]", uri, production, allow_custom_scheme=kind == "public")
    if redirect_uris == []:
        t.error("redirect_uris", "needs at least one URI")
    post_logout = t.list("post_logout_redirect_uris", [])
    for i, uri in enumerate(post_logout or []):
        check_url(t, f"post_logout_redirect_uris[{i}]", uri, production, allow_custom_scheme=kind == "public")
    bcl = t.str("backchannel_logout_uri", None)
    check_url(t, "backchannel_logout_uri", bcl, production)
    scopes = t.list("scopes", list(SCOPES))
    for s in scopes or []:
        if s not in SCOPES:
            t.error("scopes", f"unknown scope {s!r}; known: {', '.join(SCOPES)}")
    client_methods = t.list("methods", list(LOGIN_METHODS))
    for m in client_methods or []:
        if m not in LOGIN_METHODS:
            t.error("methods", f"unknown login method {m!r}; known: {', '.join(LOGIN_METHODS)}")
    grant_types = t.list("grant_types", ["authorization_code", "refresh_token"])
    for g in grant_types or []:
        if g not in ("authorization_code", "refresh_token"):
            t.error("grant_types", f"unsupported grant type {g!r}")
    client = ClientSettings(
        client_id=client_id or "",
        name=t.str("name", client_id or ""),
        type=kind or "confidential",
        token_endpoint_auth_method=auth or default_auth,
        client_secret=secret,
        jwks=jwks,
        redirect_uris=tuple(redirect_uris or ()),
        post_logout_redirect_uris=tuple(post_logout or ()),
        backchannel_logout_uri=bcl,
        backchannel_logout_session_required=t.bool("backchannel_logout_session_required", True),
        scopes=tuple(scopes or ()),
        methods=tuple(client_methods or ()),
        min_level=t.str("min_level", "low", choices=LEVELS),
        first_party=t.bool("first_party", False),
        grant_types=tuple(grant_types or ()),
        disabled_methods_message=t.messages("disabled_message"),
        passkey_satisfies_sms=t.bool("passkey_satisfies_sms", True),
        passkey_high=t.bool("passkey_high", False),
        **read_client_disclosure(t, redirect_uris or []),
        **_read_protocol_policy(t, kind, auth),
    )
    t.finish()
    return client if client_id else None


def _read_protocol_policy(t: ConfigTable, kind: str | None, auth: str | None) -> dict:
    """PKCE, PAR and DPoP per client, and the ``fapi2`` profile that turns them all on."""
    require_pkce = t.bool("require_pkce", True)
    if kind == "public" and not require_pkce:
        t.error("require_pkce", "a public client always uses PKCE (RFC 9700 section 2.1.1)")
    profile = t.str("profile", None, choices=("fapi2",))
    if profile == "fapi2" and auth != "private_key_jwt":
        t.error(
            "profile", 'fapi2 needs token_endpoint_auth_method = "private_key_jwt" (a confidential client)'
        )
    require_par = t.bool("require_pushed_authorization_requests", False)
    require_dpop = t.bool("require_dpop", False)
    for key, value in (
        ("require_pkce", require_pkce),
        ("require_pushed_authorization_requests", require_par),
        ("require_dpop", require_dpop),
    ):
        if profile == "fapi2" and t.has(key) and not value:
            t.error(key, "cannot be false for a fapi2 client")
    return {
        "require_pkce": require_pkce or kind == "public" or profile == "fapi2",
        "require_pushed_authorization_requests": require_par or profile == "fapi2",
        "require_dpop": require_dpop or profile == "fapi2",
        "profile": profile,
    }


def _read_client_auth(t: ConfigTable, kind: str | None, default_auth: str) -> tuple:
    """How the client authenticates (RFC 7591 ``token_endpoint_auth_method``): the method, the
    secret (env:/file:, 32 characters at least) or the public keys for ``private_key_jwt``."""
    auth = t.str("token_endpoint_auth_method", default_auth, choices=AUTH_METHODS)
    secret = t.secret("client_secret", None)
    jwks = None
    if t.has("jwks_file"):
        p = t.path_value("jwks_file")
        if p is not None and p.exists():
            try:
                jwks = json.loads(p.read_text())
                if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                    t.error("jwks_file", "must hold a JSON Web Key Set")
                    jwks = None
                elif any(("d" in k or k.get("kty") == "oct") for k in jwks["keys"]):
                    t.error("jwks_file", "must hold public keys only")
                    jwks = None
            except ValueError as exc:
                t.error("jwks_file", f"is not valid JSON: {exc}")
    if kind == "public" and auth != "none":
        t.error("token_endpoint_auth_method", "a public client authenticates with none")
    if kind == "confidential":
        if auth == "none":
            t.error("token_endpoint_auth_method", "a confidential client must authenticate")
        if auth in ("client_secret_basic", "client_secret_post") and not t.has("client_secret"):
            t.error("client_secret", f"is required for {auth}")
        if auth in ("client_secret_basic", "client_secret_post") and secret is not None and len(secret) < 32:
            t.error("client_secret", "must be at least 32 characters of high-entropy random data")
        if auth == "private_key_jwt" and jwks is None and not t.has("jwks_file"):
            t.error("jwks_file", "is required for private_key_jwt")
    return auth, secret, jwks
