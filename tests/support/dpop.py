"""A DPoP key and its proofs (RFC 9449 section 4.2), as a client makes them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from joserfc import jwt
from joserfc.jwk import ECKey


class DPoPKey:
    def __init__(self) -> None:
        self.key = ECKey.generate_key("P-256")
        self.jkt = self.key.thumbprint()
        self.nonce: str | None = None

    def proof(self, method: str, url: str, access_token: str | None = None, **override) -> str:
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        header.update(override.pop("header", {}))
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token is not None:
            claims["ath"] = (
                base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(b"=").decode()
            )
        claims.update(override)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(header, claims, self.key)

    def post(
        self,
        client,
        path: str,
        data: dict,
        headers: dict | None = None,
        issuer="http://localhost",
        **override,
    ):
        """POST with a proof; on ``use_dpop_nonce`` take the nonce and try once more (section 8)."""
        for _ in range(2):
            proof = self.proof("POST", issuer + path, **override)
            resp = client.post(path, data=data, headers={**(headers or {}), "DPoP": proof})
            if resp.status_code == 400 and (resp.json or {}).get("error") == "use_dpop_nonce":
                self.nonce = resp.headers["DPoP-Nonce"]
                continue
            return resp
        return resp
