"""What a relying party may learn: the claims each scope may release (OpenID Connect
Core 5.4) and a client's disclosure settings — subject type and sector (Core 8),
claim limit. Read with the client's table by :mod:`idp.core.settings`; applied by
:mod:`idp.oidc.claims`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from connectors.config import ConfigTable

# The claims each scope may release (OpenID Connect Core 5.4); [claims.scopes] may release fewer.
SCOPE_CLAIMS = {
    "profile": (
        "name",
        "given_name",
        "family_name",
        "birthdate",
        "locale",
        "preferred_username",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}


def read_client_disclosure(t: ConfigTable, redirect_uris: list[str]) -> dict[str, Any]:
    """A client's subject type, sector and claim limit (docs/privacy.md)."""
    subject_type = t.str("subject_type", "public", choices=("public", "pairwise"))
    sector = t.str("sector_identifier", None)
    if subject_type == "pairwise" and not sector:
        hosts = {urlsplit(u).hostname for u in redirect_uris}
        if len(hosts) == 1 and None not in hosts:
            sector = hosts.pop()  # Core 8.1: the host of the redirect URI
        else:
            t.error(
                "sector_identifier",
                "is required for a pairwise client whose redirect URIs span several hosts",
            )
    claims = t.list("claims", None)
    known = {c for names in SCOPE_CLAIMS.values() for c in names}
    for name in claims or []:
        if name not in known:
            t.error("claims", f"unknown claim {name!r}; known: {', '.join(sorted(known))}")
    return {
        "subject_type": subject_type or "public",
        "sector_identifier": sector if subject_type == "pairwise" else None,
        "claims": tuple(claims) if claims is not None else None,
    }
