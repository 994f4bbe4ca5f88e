"""Which claims a relying party receives, by scope and by the ``claims`` parameter, and the
``sub`` it knows the person by.

OpenID Connect Core 5.4 (scope claims), 5.5 (the ``claims`` request
parameter, including essential claims), 3.1.3.6 (``at_hash``) and 8 (subject
identifier types: public, or pairwise per sector).

Minimal disclosure: the claims each scope releases are configuration
(``[claims.scopes]``, at most those of Core 5.4), and a client can be limited
to fewer (``claims`` in its ``[[clients]]`` table) than its scopes would give.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from flask import current_app

from idp.core.client_settings import ClientSettings
from idp.core.disclosure import SCOPE_CLAIMS
from idp.core.hashing import keyed_digest
from idp.core.inputs import loads_json
from idp.core.storage import Account

PROTOCOL_CLAIMS = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "at_hash",
)
CLAIMS_SUPPORTED = (*PROTOCOL_CLAIMS, *(c for claims in SCOPE_CLAIMS.values() for c in claims))


def claims_supported(settings) -> list[str]:
    """What discovery announces: the protocol's claims and those the configured scopes release."""
    configured = settings.sections.get("claims")
    mapping = configured.scopes if configured is not None else SCOPE_CLAIMS
    return [*PROTOCOL_CLAIMS, *(c for claims in mapping.values() for c in claims)]


@dataclass(frozen=True)
class ClaimsSettings:
    """``[claims]``: ``scopes.<scope>`` lists the claims that scope releases."""

    scopes: dict[str, tuple[str, ...]]

    @classmethod
    def from_table(cls, t) -> ClaimsSettings:
        table = t.table("scopes")
        scopes = {}
        for scope, standard in SCOPE_CLAIMS.items():
            names = table.list(scope, list(standard)) or []
            for name in names:
                if name not in standard:
                    table.error(
                        scope, f"{name!r} is not a claim of the {scope} scope; known: {', '.join(standard)}"
                    )
            scopes[scope] = tuple(n for n in names if n in standard)
        for extra in set(table.data) - set(SCOPE_CLAIMS):
            table.error(extra, f"unknown scope; known: {', '.join(SCOPE_CLAIMS)}")
            table.data.pop(extra)
        table.finish()
        t.finish()
        return cls(scopes=scopes)


def scope_claims() -> dict[str, tuple[str, ...]]:
    """The claims each scope releases, as configured (Core 5.4 when not configured)."""
    configured = current_app.extensions["idp.settings"].sections.get("claims")
    return configured.scopes if configured is not None else SCOPE_CLAIMS


def subject_for(client: ClientSettings | None, account: Account) -> str:
    """The ``sub`` a client knows the person by (OpenID Connect Core 8).

    Public: the account's own ``sub``, the same for every client (the portal and
    the app share one identity). Pairwise: a keyed hash of the client's sector
    and the account, so clients of different sectors cannot join their users
    (Core 8.1); clients that share a sector share it.
    """
    if client is None or client.subject_type != "pairwise":
        return account.sub
    return keyed_digest("pairwise", client.sector_identifier or "", account.sub)


def is_subject_of(claims: dict, account: Account) -> bool:
    """Does a token we issued (an ``id_token_hint``) name this account, for the client it was
    issued to (its ``azp``, or its only audience)?"""
    aud = claims.get("aud")
    client_id = claims.get("azp") or (aud if isinstance(aud, str) else (aud or [None])[0])
    client = current_app.extensions["idp.clients"].get(client_id) if isinstance(client_id, str) else None
    return claims.get("sub") == subject_for(client.settings if client else None, account)


def half_hash(value: str, alg: str) -> str:
    """Left half of the hash of ``value``, base64url (``at_hash``, ``c_hash``)."""
    bits = int(alg[2:]) if alg[2:].isdigit() else 256
    h = {256: hashlib.sha256, 384: hashlib.sha384, 512: hashlib.sha512}[bits](value.encode()).digest()
    return base64.urlsafe_b64encode(h[: len(h) // 2]).rstrip(b"=").decode()


# The account columns the claims are made from (and ``sub``): what a token request reads.
ACCOUNT_CLAIM_COLUMNS = (
    "sub",
    "given_name",
    "family_name",
    "birthdate",
    "locale",
    "username",
    "updated_at",
    "email",
    "email_verified",
    "phone",
    "phone_verified",
    "address",
)


def account_claims(account: Account) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": " ".join(n for n in (account.given_name, account.family_name) if n) or None,
        "given_name": account.given_name,
        "family_name": account.family_name,
        "birthdate": account.birthdate,
        "locale": account.locale,
        "preferred_username": account.username,
        "updated_at": account.updated_at,
        "email": account.email,
        "email_verified": bool(account.email_verified) if account.email else None,
        "phone_number": account.phone,
        "phone_number_verified": bool(account.phone_verified) if account.phone else None,
        "address": account.address or None,
    }
    return {k: v for k, v in values.items() if v is not None}


def parse_claims_request(raw: str | None) -> dict | None:
    """Validate the ``claims`` parameter; raises ValueError with a reason."""
    if not raw:
        return None
    try:
        value = loads_json(raw)
    except ValueError as exc:
        raise ValueError(f"claims is not usable JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError("claims must be a JSON object")
    out = {}
    for member in ("id_token", "userinfo"):
        part = value.get(member)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise ValueError(f"claims.{member} must be a JSON object")
        out[member] = {k: (v if isinstance(v, dict) else None) for k, v in part.items() if isinstance(k, str)}
    return out


def requested_acr(claims_request: dict | None) -> list[str]:
    """acr values asked for through ``claims`` (``{"id_token": {"acr": {"values": [...]}}}``)."""
    acr = ((claims_request or {}).get("id_token") or {}).get("acr") or {}
    values = acr.get("values")
    if not isinstance(values, list):
        values = [acr["value"]] if "value" in acr else []
    return [v for v in values if isinstance(v, str)]


def scope_with_claims(scope: str, claims_request: dict | None, allowed_scopes) -> str:
    """``scope`` plus the allowed scopes that release the claims requested by name."""
    names = {n for member in (claims_request or {}).values() for n in member}
    scopes = scope.split()
    for s, released in scope_claims().items():
        if s in allowed_scopes and s not in scopes and names & set(released):
            scopes.append(s)
    return " ".join(scopes)


def granted_claims(scope: str, client: ClientSettings | None = None) -> set[str]:
    """The claims the granted scopes cover, within the client's own limit: the ``claims``
    parameter can place these in the ID token or ask for them at userinfo, never reach beyond
    what the client may have and the person approved (OpenID Connect Core 5.5 leaves the
    policy to the provider)."""
    mapping = scope_claims()
    names = {c for s in scope.split() for c in mapping.get(s, ())}
    if client is not None and client.claims is not None:
        names &= set(client.claims)
    return names


def _select(account: Account, names) -> dict[str, Any]:
    values = account_claims(account)
    return {k: values[k] for k in names if k in values}


def id_token_claims(
    account: Account, scope: str, claims_request: dict | None, client: ClientSettings | None = None
) -> dict[str, Any]:
    allowed = granted_claims(scope, client)
    wanted = list((claims_request or {}).get("id_token") or {})
    return _select(account, [c for c in wanted if c in allowed])


def userinfo_claims(
    account: Account, scope: str, claims_request: dict | None, client: ClientSettings | None = None
) -> dict[str, Any]:
    allowed = granted_claims(scope, client)
    names = sorted(allowed)
    names += [c for c in (claims_request or {}).get("userinfo") or {} if c in allowed and c not in names]
    out = {"sub": subject_for(client, account)}
    out.update(_select(account, names))
    return out
