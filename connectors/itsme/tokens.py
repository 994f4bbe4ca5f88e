"""Opening and checking itsme's nested JWTs (ID token and userinfo response).

itsme signs then encrypts (RFC 7519 section 11.2): the outer layer is a JWE
(RFC 7516) to our ``enc`` key, the inner one a JWS (RFC 7515) ``RS256``.
Algorithms are allowlisted per call and checked in the header before any
key is used; unencrypted tokens, ``none`` and HMAC signatures are refused.
ID token checks follow OIDC Core section 3.1.3.7; userinfo checks section 5.3.2.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Callable, Mapping
from typing import Any

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from connectors.base import ConnectorError, level_rank

JWE_ALGS = ("RSA-OAEP-256", "RSA-OAEP")
JWE_ENCS = ("A128CBC-HS256", "A256CBC-HS512", "A128GCM", "A256GCM")
JWS_ALGS = ("RS256",)
LEEWAY = 60  # seconds of clock skew tolerated on exp and iat


def invalid(what: str, check: str) -> ConnectorError:
    return ConnectorError("invalid_token", f"{what}: {check}")


def _header(segment: str, what: str) -> dict[str, Any]:
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(what, "malformed header") from exc
    if not isinstance(header, dict):
        raise invalid(what, "malformed header")
    return header


def _name(value: Any) -> str:
    """An attacker-chosen header value, made safe for a log line."""
    return repr(value)[:40]


def open_nested(
    token: Any,
    what: str,
    decryption_key: Callable[[str | None], RSAKey | None],
    signing_key: Callable[[str | None], RSAKey | None],
) -> dict[str, Any]:
    """Decrypt with our key chosen by the JWE ``kid``, verify with itsme's key chosen by the JWS ``kid``."""
    if not isinstance(token, str):
        raise invalid(what, "missing")
    parts = token.split(".")
    if len(parts) == 3:
        raise invalid(what, "not encrypted")
    if len(parts) != 5:
        raise invalid(what, "malformed")
    header = _header(parts[0], what)
    if header.get("alg") not in JWE_ALGS:
        raise invalid(what, f"encryption alg {_name(header.get('alg'))} not allowed")
    if header.get("enc") not in JWE_ENCS:
        raise invalid(what, f"encryption enc {_name(header.get('enc'))} not allowed")
    if "zip" in header:
        raise invalid(what, "compressed JWE not allowed")
    if str(header.get("cty", "JWT")).upper() != "JWT":
        raise invalid(what, "content type is not a nested JWT")
    kid = header.get("kid")
    key = decryption_key(kid if isinstance(kid, str) else None)
    if key is None:
        raise invalid(what, "encrypted to an unknown or expired key")
    try:
        inner = jwe.decrypt_compact(token, key, algorithms=JWE_ALGS + JWE_ENCS).plaintext
    except (JoseError, ValueError) as exc:
        raise invalid(what, "decryption failed") from exc
    return _verify(inner.decode("ascii", "replace") if inner else "", what, signing_key)


def _verify(inner: str, what: str, signing_key: Callable[[str | None], RSAKey | None]) -> dict[str, Any]:
    parts = inner.split(".")
    if len(parts) != 3:
        raise invalid(what, "encrypted content is not a signed JWT")
    header = _header(parts[0], what)
    if header.get("alg") not in JWS_ALGS:
        raise invalid(what, f"signature alg {_name(header.get('alg'))} not allowed")
    if "crit" in header:
        raise invalid(what, "critical header extensions not supported")
    kid = header.get("kid")
    key = signing_key(kid if isinstance(kid, str) else None)
    if key is None:
        raise invalid(what, "signed with an unknown key")
    try:
        payload = jws.deserialize_compact(inner, key, algorithms=JWS_ALGS).payload
        claims = json.loads(payload)
    except (JoseError, ValueError) as exc:
        raise invalid(what, "bad signature") from exc
    if not isinstance(claims, dict):
        raise invalid(what, "payload is not a JSON object")
    return claims


def _number(claims: Mapping[str, Any], name: str, what: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(what, f"{name} missing or not a number")
    return value


def check_audience(claims: Mapping[str, Any], client_id: str, what: str) -> None:
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise invalid(what, "aud does not contain our client_id")
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise invalid(what, "azp is not our client_id")


def check_id_token(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float,
    levels: Mapping[str, str],
    requested_level: str,
) -> str:
    """OIDC Core section 3.1.3.7 checks; returns the level the ``acr`` maps to."""
    what = "id_token"
    if claims.get("iss") != issuer:
        raise invalid(what, "iss is not the itsme issuer")
    check_audience(claims, client_id, what)
    if now > _number(claims, "exp", what) + LEEWAY:
        raise invalid(what, "expired")
    if _number(claims, "iat", what) > now + LEEWAY:
        raise invalid(what, "iat in the future")
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise invalid(what, "sub missing")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise invalid(what, "nonce mismatch")
    acr = claims.get("acr")
    if not isinstance(acr, str) or not acr:
        raise invalid(what, "acr missing")
    if acr not in levels:
        raise invalid(what, "acr is not a configured itsme level")
    level = levels[acr]
    if level_rank(level) < level_rank(requested_level):
        raise ConnectorError("insufficient_level", f"itsme returned {level}, {requested_level} was requested")
    return level


def check_userinfo(claims: Mapping[str, Any], *, issuer: str, client_id: str, sub: str) -> None:
    """OIDC Core section 5.3.2: ``sub`` must match the ID token; ``iss``/``aud`` when present."""
    what = "userinfo"
    got = claims.get("sub")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), sub.encode()):
        raise invalid(what, "sub differs from the id_token")
    if "iss" in claims and claims["iss"] != issuer:
        raise invalid(what, "iss is not the itsme issuer")
    if "aud" in claims:
        check_audience(claims, client_id, what)
