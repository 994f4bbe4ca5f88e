"""Which claims a relying party receives, by scope and by the ``claims`` parameter.

OpenID Connect Core 5.4 (scope claims), 5.5 (the ``claims`` request
parameter, including essential claims) and 3.1.3.6 (``at_hash``).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from idp.core.inputs import loads_json
from idp.core.storage import Account

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
CLAIMS_SUPPORTED = (
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
    *(c for claims in SCOPE_CLAIMS.values() for c in claims),
)


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
    for s, released in SCOPE_CLAIMS.items():
        if s in allowed_scopes and s not in scopes and names & set(released):
            scopes.append(s)
    return " ".join(scopes)


def granted_claims(scope: str) -> set[str]:
    """The claims the granted scopes cover: the ``claims`` parameter can place these in the
    ID token or ask for them at userinfo, never reach beyond what the client may have and the
    person approved (OpenID Connect Core 5.5 leaves the policy to the provider)."""
    return {c for s in scope.split() for c in SCOPE_CLAIMS.get(s, ())}


def _select(account: Account, names) -> dict[str, Any]:
    values = account_claims(account)
    return {k: values[k] for k in names if k in values}


def id_token_claims(account: Account, scope: str, claims_request: dict | None) -> dict[str, Any]:
    allowed = granted_claims(scope)
    wanted = list((claims_request or {}).get("id_token") or {})
    return _select(account, [c for c in wanted if c in allowed])


def userinfo_claims(account: Account, scope: str, claims_request: dict | None) -> dict[str, Any]:
    allowed = granted_claims(scope)
    names = sorted(allowed)
    names += [c for c in (claims_request or {}).get("userinfo") or {} if c in allowed and c not in names]
    out = {"sub": account.sub}
    out.update(_select(account, names))
    return out
