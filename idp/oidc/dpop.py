"""DPoP: sender-constrained tokens (RFC 9449), on joserfc; Authlib has no DPoP.

* A proof (``DPoP`` header) is checked as section 4.3 lists: one header, a JWS
  with ``typ: dpop+jwt``, an asymmetric algorithm of :data:`ALGORITHMS`, a
  public ``jwk`` in the header that verifies it, ``htm``/``htu`` of this
  request, a recent ``iat``, a ``jti`` never seen (replay cache in the shared
  store), our ``nonce`` where we ask for one (section 8), and ``ath`` when it
  comes with an access token (section 4.2).
* The token endpoint binds what it issues to the proof's key (RFC 7638
  thumbprint, ``jkt``): the access token carries ``cnf.jkt`` and is of type
  ``DPoP`` (section 6); a public client's refresh tokens, and a code whose
  authorization request named a ``dpop_jkt`` (section 10), only work with
  proofs of that key (section 5). The binding lives on the grant.
* A resource (userinfo) needs ``Authorization: DPoP <token>`` and a proof
  with the token's hash for a bound token (section 7).

Server nonces are stateless: an HMAC of the current five-minute period under
the application's secret key, so every worker accepts every other's nonce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlsplit, urlunsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError
from flask import current_app, g, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry

from idp.core.hashing import digest, keyed_digest

ALGORITHMS = ("ES256", "ES384", "PS256", "RS256")
IAT_LEEWAY = 60  # seconds a proof's iat may lie in the past or the future
NONCE_PERIOD = 300
MAX_PROOF = 8192


class DPoPError(OAuth2Error):
    """``invalid_dpop_proof`` or ``use_dpop_nonce`` (sections 7.1, 8), with a fresh nonce."""

    status_code = 400

    def __init__(self, error: str, description: str, status_code: int = 400) -> None:
        super().__init__(description=description, status_code=status_code)
        self.error = error

    def get_headers(self):
        return super().get_headers() + [("DPoP-Nonce", current_nonce())]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _nonce_for(period: int) -> str:
    return _b64(bytes.fromhex(keyed_digest("dpop-nonce", str(period)))[:18])


def current_nonce() -> str:
    return _nonce_for(int(time.time()) // NONCE_PERIOD)


def nonce_is_fresh(value) -> bool:
    period = int(time.time()) // NONCE_PERIOD
    return isinstance(value, str) and any(
        hmac.compare_digest(value, _nonce_for(p)) for p in (period, period - 1)
    )


def access_token_hash(token: str) -> str:
    return _b64(hashlib.sha256(token.encode()).digest())


def normalized_uri(uri: str) -> str:
    """The URI without query and fragment, scheme and host lower-cased, default port dropped."""
    parts = urlsplit(uri)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("https", 443), ("http", 80)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


def proof_header() -> str | None:
    """The request's one DPoP proof, or None; two or more is an error (section 4.3, check 1)."""
    values = request.headers.getlist("DPoP")
    if not values:
        return None
    if len(values) > 1 or len(values[0]) > MAX_PROOF:
        raise DPoPError("invalid_dpop_proof", "exactly one DPoP proof is expected")
    return values[0]


def verify_proof(
    proof: str, method: str, uri: str, *, require_nonce: bool, access_token: str | None = None
) -> str:
    """Check a proof (RFC 9449 section 4.3); the thumbprint (``jkt``) of its key."""
    bad = "invalid_dpop_proof"
    try:
        header = jws.extract_compact(proof.encode()).protected
    except (JoseError, ValueError, UnicodeError):
        raise DPoPError(bad, "the DPoP proof is not a JWS") from None
    if header.get("typ") != "dpop+jwt":
        raise DPoPError(bad, "the DPoP proof must have typ dpop+jwt")
    if header.get("alg") not in ALGORITHMS:
        raise DPoPError(bad, "the DPoP proof's algorithm is not accepted")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in ("EC", "RSA"):
        raise DPoPError(bad, "the DPoP proof must carry a public key in jwk")
    try:
        key = JWKRegistry.import_key(jwk)
        claims = jwt.decode(proof, key, algorithms=[header["alg"]]).claims
    except (JoseError, ValueError, TypeError):
        raise DPoPError(bad, "the DPoP proof's signature does not verify") from None
    _check_claims(claims, method, uri, access_token)
    jkt = key.thumbprint()
    if require_nonce and not nonce_is_fresh(claims.get("nonce")):
        raise DPoPError("use_dpop_nonce", "use the DPoP-Nonce this server provides")
    ttl = 2 * IAT_LEEWAY + NONCE_PERIOD
    if not current_app.extensions["idp.kv"].add(
        f"dpop-jti:{digest(jkt + ':' + str(claims['jti']))}", b"1", ttl
    ):
        raise DPoPError(bad, "this DPoP proof was used before")
    return jkt


def _check_claims(claims: dict, method: str, uri: str, access_token: str | None) -> None:
    bad = "invalid_dpop_proof"
    jti, iat = claims.get("jti"), claims.get("iat")
    if not isinstance(jti, str) or not 8 <= len(jti) <= 256:
        raise DPoPError(bad, "the DPoP proof needs a jti")
    if not isinstance(iat, int) or abs(int(time.time()) - iat) > IAT_LEEWAY:
        raise DPoPError(bad, "the DPoP proof's iat is not recent")
    if claims.get("htm") != method:
        raise DPoPError(bad, "the DPoP proof's htm is not this request's method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalized_uri(htu) != normalized_uri(uri):
        raise DPoPError(bad, "the DPoP proof's htu is not this endpoint")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise DPoPError(bad, "the DPoP proof's ath does not match the access token")


# ---------------------------------------------------------------------------
# The token endpoint
# ---------------------------------------------------------------------------


def token_request_key() -> str | None:
    """Verify the token request's proof, if any (before the code is claimed); its ``jkt``."""
    proof = proof_header()
    g.dpop_jkt = None
    if proof is None:
        return None
    issuer = current_app.extensions["idp.settings"].issuer
    g.dpop_jkt = verify_proof(proof, "POST", issuer + "/token", require_nonce=True)
    return g.dpop_jkt


def check_binding(client, grant, jkt: str | None, kind: str) -> str | None:
    """The key a grant's tokens must now be bound to, or an error (sections 5, 10).

    ``kind`` is ``"code"`` or ``"refresh"``. Returns the ``jkt`` to store on the
    grant (a public client's first proof), else None.
    """
    if jkt is None and client.settings.require_dpop:
        raise InvalidRequestError("This client must send a DPoP proof.")
    bound = getattr(grant, "dpop_jkt", None)
    if bound and jkt != bound and (kind == "code" or client.is_public):
        raise InvalidGrantError("The grant is bound to another DPoP key.")
    if jkt and client.is_public and not bound:
        return jkt
    return None


def confirmation(jkt: str | None) -> dict:
    """The ``cnf`` claim of an access token bound to ``jkt`` (section 6.1)."""
    return {"cnf": {"jkt": jkt}} if jkt else {}


def authorization_request_key() -> str | None:
    """PAR (section 10.1): a proof sent with the pushed request binds its code to that key."""
    proof = proof_header()
    if proof is None:
        return None
    issuer = current_app.extensions["idp.settings"].issuer
    return verify_proof(proof, "POST", issuer + "/par", require_nonce=False)


def resource_key(claims: dict, scheme: str, token: str, uri: str) -> str | None:
    """At a resource: a bound token needs the DPoP scheme and a proof of its key (section 7)."""
    bound = (claims.get("cnf") or {}).get("jkt") if isinstance(claims.get("cnf"), dict) else None
    if scheme == "dpop" and not bound:
        raise DPoPError("invalid_token", "the access token is not DPoP-bound", 401)
    if not bound:
        return None
    if scheme != "dpop":
        raise DPoPError("invalid_token", "a DPoP-bound access token needs the DPoP scheme", 401)
    proof = proof_header()
    if proof is None:
        raise DPoPError("invalid_dpop_proof", "a DPoP proof is required", 401)
    try:
        jkt = verify_proof(proof, request.method, uri, require_nonce=False, access_token=token)
    except DPoPError as exc:
        exc.status_code = 401  # a resource answers 401 with the DPoP challenge (section 7.1)
        raise
    if not hmac.compare_digest(jkt, bound):
        raise DPoPError("invalid_dpop_proof", "the DPoP proof is not made with the token's key", 401)
    return jkt
