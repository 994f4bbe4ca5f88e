"""The yardstick of the benchmark: a bare Flask app that signs one RS256 JWT per request.

Run under the same gunicorn settings as the provider
(``gunicorn 'bare_app:create_app()'`` from this folder). The key is a PEM
file named by ``BENCH_KEY_FILE``, loaded once per worker, as the provider's
key ring does. ``POST /token`` answers with a JSON body shaped like a token
response holding one RS256-signed JWT whose claims resemble an access
token's, so the only work per request is Flask's request handling, one
signature and a small JSON response.
"""

from __future__ import annotations

import os
import secrets
import time

from flask import Flask, jsonify
from joserfc import jwt
from joserfc.jwk import RSAKey


def create_app(key_file: str | None = None) -> Flask:
    path = key_file or os.environ["BENCH_KEY_FILE"]
    with open(path, "rb") as fh:
        key = RSAKey.import_key(fh.read(), {"kid": "bench", "alg": "RS256", "use": "sig"})
    app = Flask(__name__)
    header = {"alg": "RS256", "kid": "bench", "typ": "at+jwt"}

    @app.post("/token")
    def token():
        now = int(time.time())
        claims = {
            "iss": "https://bare.bench.example",
            "sub": secrets.token_hex(16),
            "aud": "https://bare.bench.example/userinfo",
            "client_id": "portal",
            "exp": now + 600,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "scope": "openid profile email",
        }
        signed = jwt.encode(header, claims, key, algorithms=["RS256"])
        response = jsonify(access_token=signed, token_type="Bearer", expires_in=600)
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
