"""A local stand-in for itsme that speaks the real protocol over HTTP.

It behaves as itsme's integration guide describes (``shared/reference/itsme.md``):
discovery, an authorization endpoint that checks client, exact redirect URI,
``openid`` + ``service:<code>`` scopes and PKCE S256; a token endpoint that
checks our ``private_key_jwt`` assertion against our published JWKS (or
``client_secret_post``), single-use codes living 3 minutes and the PKCE
verifier; ID tokens and userinfo responses signed RS256 then encrypted
RSA-OAEP-256 / A128CBC-HS256 to our ``enc`` key; a JWKS whose signing key
can be rotated.

Usage::

    with FakeItsme(client_id="c", redirect_uris=[cb], rp_jwks=keys.public_jwks_bytes) as fake:
        fake.next_login(claims={...}, acr=ACR_ADVANCED)     # or error="access_denied"
        fake.behaviour.id_token.sign_alg = "none"         # misbehave (see Behaviour)

A browser test sends the user agent to the authorization URL; the fake
answers at once with a redirect back to ``redirect_uri`` (no login page).
"""

from __future__ import annotations

import base64
import collections
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, Response, abort, jsonify, request
from joserfc import jwe, jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import RSAKey
from werkzeug.serving import make_server

ACR_BASIC = "http://itsme.services/v2/claim/acr_basic"
ACR_ADVANCED = "http://itsme.services/v2/claim/acr_advanced"
NATIONAL_NUMBER = "http://itsme.services/v2/claim/BENationalNumber"
CARD_NUMBER = "http://itsme.services/v2/claim/BEeidSn"
CODE_LIFETIME = 180
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

# Endpoint names used by Behaviour.slow / Behaviour.status and FakeItsme.hits.
DISCOVERY, AUTHORIZATION, TOKEN, USERINFO, JWKS = "discovery", "authorization", "token", "userinfo", "jwks"

DROP = object()  # in TokenForm.claims: remove that claim

SCOPE_CLAIMS = {
    "profile": ("family_name", "given_name", "name", "gender", "locale", "picture", "birthdate"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
    "eid": (NATIONAL_NUMBER, CARD_NUMBER),
}


def default_claims() -> dict[str, Any]:
    return {
        "given_name": "Marie",
        "family_name": "Dupont",
        "name": "Marie Dupont",
        "birthdate": "1985-07-30",
        "gender": "female",
        "locale": "fr",
        "email": "marie.dupont@example.be",
        "email_verified": False,
        "phone_number": "+32470123456",
        "phone_number_verified": True,
        "address": {
            "formatted": "Rue de la Loi 16\n1000 Bruxelles",
            "street_address": "Rue de la Loi 16",
            "postal_code": "1000",
            "locality": "Bruxelles",
        },
        NATIONAL_NUMBER: "85073003328",
        CARD_NUMBER: "591123456789",
    }


@dataclass
class Login:
    """What the person does at itsme for one authorization request."""

    sub: str = "itsme-pairwise-sub-0001"
    claims: dict[str, Any] = field(default_factory=default_claims)
    acr: str | None = None  # None: the first requested acr_values entry
    error: str | None = None  # e.g. "access_denied" (the person cancelled)
    error_description: str | None = None


@dataclass
class TokenForm:
    """How the fake packs an ID token or a userinfo response."""

    claims: dict[str, Any] = field(default_factory=dict)  # merged over the real claims; DROP removes
    encrypted: bool = True
    jwe_alg: str = "RSA-OAEP-256"
    jwe_enc: str = "A128CBC-HS256"
    encrypt_to_unknown_key: bool = False
    sign_alg: str = "RS256"  # "none" and "HS256" (keyed with the public key PEM) are forged by hand
    sign_with_unknown_key: bool = False
    content_type: str = "application/jwt"  # userinfo only


@dataclass
class Behaviour:
    """Misbehaviour switches; ``FakeItsme.reset()`` restores the defaults."""

    slow: set[str] = field(default_factory=set)  # endpoint names that answer after slow_seconds
    slow_seconds: float = 2.0
    status: dict[str, int] = field(default_factory=dict)  # endpoint name -> forced HTTP status
    discovery: dict[str, Any] = field(default_factory=dict)  # merged over the discovery document
    id_token: TokenForm = field(default_factory=TokenForm)
    userinfo: TokenForm = field(default_factory=TokenForm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class FakeItsme:
    """The fake itsme server; a context manager, or call ``start()`` / ``stop()``."""

    def __init__(
        self,
        *,
        client_id: str = "test-client",
        service_code: str = "TEST_SERVICE",
        redirect_uris: list[str] | tuple[str, ...] = ("http://127.0.0.1:5000/login/itsme/callback",),
        rp_jwks: bytes | str | Callable[[], bytes] | None = None,
        client_secret: str | None = None,
        clock: Callable[[], float] = time.time,
        host: str = "127.0.0.1",
    ) -> None:
        self.client_id = client_id
        self.service_code = service_code
        self.redirect_uris = list(redirect_uris)
        self.rp_jwks = rp_jwks  # our JWKS: bytes, a URL to fetch, or a callable returning bytes
        self.client_secret = client_secret
        self.clock = clock
        self.host = host
        self.behaviour = Behaviour()
        self.default_login = Login()
        self.hits: collections.Counter[str] = collections.Counter()
        self._queue: collections.deque[Login] = collections.deque()
        self._lock = threading.Lock()
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._jtis: set[str] = set()
        self._signing_keys = [self._new_signing_key()]
        self._unknown_sig_key = RSAKey.generate_key(2048, {"kid": "not-published", "use": "sig"})
        self._unknown_enc_key = RSAKey.generate_key(2048, {"kid": "not-ours", "use": "enc"})
        self._stopping = threading.Event()
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self.base_url = ""
        self.app = self._build_app()

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> FakeItsme:
        self._server = make_server(self.host, 0, self.app, threaded=True)
        self.base_url = f"http://{self.host}:{self._server.server_port}"
        self._stopping.clear()
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-itsme", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes slow handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeItsme:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/v2"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    # -- knobs -------------------------------------------------------------
    def next_login(self, **kw: Any) -> Login:
        """Queue what the person does at the next authorization (see :class:`Login`)."""
        login = Login(**kw)
        self._queue.append(login)
        return login

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.default_login = Login()
        self._queue.clear()
        self.hits.clear()

    def rotate_signing_key(self, keep_old: bool = True) -> str:
        """Sign with a new key from now on; the old one stays published when ``keep_old``."""
        key = self._new_signing_key()
        self._signing_keys = [key, *self._signing_keys] if keep_old else [key]
        return key.kid

    @staticmethod
    def _new_signing_key() -> RSAKey:
        return RSAKey.generate_key(2048, {"use": "sig", "kid": f"itsme-{secrets.token_hex(6)}"})

    # -- HTTP ----------------------------------------------------------------
    def _build_app(self) -> Flask:
        app = Flask("fake_itsme")

        def guarded(name: str, view: Callable[[], Any]) -> Callable[[], Any]:
            def wrapper() -> Any:
                self.hits[name] += 1
                if name in self.behaviour.slow:
                    self._stopping.wait(self.behaviour.slow_seconds)
                if name in self.behaviour.status:
                    return jsonify(error="server_error"), self.behaviour.status[name]
                return view()

            wrapper.__name__ = f"fake_{name}"
            return wrapper

        app.add_url_rule(
            "/v2/.well-known/openid-configuration", view_func=guarded(DISCOVERY, self._discovery)
        )
        app.add_url_rule("/v2/authorization", view_func=guarded(AUTHORIZATION, self._authorize))
        app.add_url_rule("/v2/token", view_func=guarded(TOKEN, self._token), methods=["POST"])
        app.add_url_rule("/v2/userinfo", view_func=guarded(USERINFO, self._userinfo), methods=["GET", "POST"])
        app.add_url_rule("/v2/jwks", view_func=guarded(JWKS, self._jwks))
        return app

    def _discovery(self) -> Any:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorization",
            "token_endpoint": self.token_endpoint,
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["pairwise"],
            "scopes_supported": ["openid", "profile", "email", "phone", "address", "eid"],
            "acr_values_supported": [ACR_BASIC, ACR_ADVANCED],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "id_token_encryption_alg_values_supported": ["RSA-OAEP-256", "RSA-OAEP"],
            "id_token_encryption_enc_values_supported": ["A128CBC-HS256", "A256CBC-HS512"],
            "userinfo_signing_alg_values_supported": ["RS256"],
            "userinfo_encryption_alg_values_supported": ["RSA-OAEP-256", "RSA-OAEP"],
            "userinfo_encryption_enc_values_supported": ["A128CBC-HS256", "A256CBC-HS512"],
            "ui_locales_supported": ["fr", "nl", "de", "en"],
            "claims_parameter_supported": True,
        }
        doc.update(self.behaviour.discovery)
        return jsonify(doc)

    def _jwks(self) -> Any:
        return jsonify(keys=[k.as_dict(private=False) for k in self._signing_keys])

    def _authorize(self) -> Any:
        q = request.args
        if q.get("client_id") != self.client_id:
            abort(400, "unknown client_id")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:  # exact, case-sensitive
            abort(400, "redirect_uri not registered")
        state = q.get("state")

        def back(**params: str) -> Response:
            if state is not None:
                params["state"] = state
            sep = "&" if "?" in redirect_uri else "?"
            return Response(status=302, headers={"Location": f"{redirect_uri}{sep}{urlencode(params)}"})

        scopes = q.get("scope", "").split()
        if q.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if "openid" not in scopes or f"service:{self.service_code}" not in scopes:
            return back(error="invalid_scope")
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return back(error="invalid_request", error_description="PKCE S256 required")
        login = self._queue.popleft() if self._queue else self.default_login
        if login.error:
            extra = {"error_description": login.error_description} if login.error_description else {}
            return back(error=login.error, **extra)
        try:
            claims_request = json.loads(q.get("claims") or "{}")
        except ValueError:
            return back(error="invalid_request", error_description="claims is not JSON")
        code = secrets.token_urlsafe(32)
        with self._lock:
            self._codes[code] = {
                "login": copy.deepcopy(login),
                "redirect_uri": redirect_uri,
                "code_challenge": q["code_challenge"],
                "nonce": q.get("nonce"),
                "acr": login.acr or (q.get("acr_values", "").split() or [ACR_BASIC])[0],
                "scopes": scopes,
                "claims_request": claims_request if isinstance(claims_request, dict) else {},
                "issued_at": self.clock(),
                "used": False,
            }
        return back(code=code)

    def _token(self) -> Any:
        f = request.form
        if f.get("grant_type") != "authorization_code":
            return _oauth_error("unsupported_grant_type")
        problem = self._authenticate_client(f)
        if problem:
            return _oauth_error("invalid_client", problem, 401)
        now = self.clock()
        with self._lock:
            grant = self._codes.get(f.get("code", ""))
            if grant is None or grant["used"]:
                return _oauth_error("invalid_grant", "unknown or used code")
            grant["used"] = True  # single use, even when the rest fails
        if now - grant["issued_at"] > CODE_LIFETIME:
            return _oauth_error("invalid_grant", "code expired")
        if f.get("redirect_uri") != grant["redirect_uri"]:
            return _oauth_error("invalid_grant", "redirect_uri mismatch")
        verifier = f.get("code_verifier", "")
        if not hmac.compare_digest(_b64(hashlib.sha256(verifier.encode()).digest()), grant["code_challenge"]):
            return _oauth_error("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access_token] = grant
        login: Login = grant["login"]
        claims = {
            "iss": self.issuer,
            "sub": login.sub,
            "aud": self.client_id,
            "iat": int(now),
            "exp": int(now) + 600,
            "auth_time": int(grant["issued_at"]),
            "nonce": grant["nonce"],
            "acr": grant["acr"],
        }
        for name in grant["claims_request"].get("id_token") or {}:
            if name in login.claims:
                claims[name] = login.claims[name]
        id_token = self._pack(claims, self.behaviour.id_token)
        return jsonify(access_token=access_token, token_type="Bearer", expires_in=600, id_token=id_token)

    def _userinfo(self) -> Any:
        auth = request.headers.get("Authorization", "")
        grant = self._access_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if grant is None:
            return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        login: Login = grant["login"]
        wanted = {name for scope in grant["scopes"] for name in SCOPE_CLAIMS.get(scope, ())}
        wanted |= set(grant["claims_request"].get("userinfo") or {})
        claims = {k: v for k, v in login.claims.items() if k in wanted}
        claims.update(sub=login.sub, iss=self.issuer, aud=self.client_id)
        form = self.behaviour.userinfo
        return Response(self._pack(claims, form), content_type=form.content_type)

    # -- client authentication (RFC 7523 section 3) --------------------------
    def _authenticate_client(self, f: Any) -> str | None:
        if "client_assertion" not in f:
            if self.client_secret is None or f.get("client_id") != self.client_id:
                return "client_secret_post not enabled for this client"
            if not hmac.compare_digest(f.get("client_secret", "").encode(), self.client_secret.encode()):
                return "bad client_secret"
            return None
        if f.get("client_assertion_type") != ASSERTION_TYPE:
            return "bad client_assertion_type"
        assertion = f["client_assertion"]
        try:
            header = json.loads(base64.urlsafe_b64decode(assertion.split(".")[0] + "=="))
            if header.get("alg") != "RS256":
                return "assertion must be RS256"
            key = self._rp_key("sig", header.get("kid"))
            if key is None:
                return "assertion kid not in the client's JWKS"
            claims = json.loads(jws.deserialize_compact(assertion, key, algorithms=["RS256"]).payload)
        except (JoseError, ValueError, IndexError):
            return "bad assertion"
        now = self.clock()
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            return "assertion iss/sub must be the client_id"
        aud = claims.get("aud")
        if self.token_endpoint not in ([aud] if isinstance(aud, str) else aud or []):
            return "assertion aud must be the token endpoint"
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= now or exp > now + 600:
            return "assertion expired or lives too long"
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 255:
            return "assertion jti missing"
        with self._lock:
            if jti in self._jtis:
                return "assertion jti replayed"
            self._jtis.add(jti)
        return None

    def _rp_jwks(self) -> list[dict[str, Any]]:
        source = self.rp_jwks
        if source is None:
            raise ValueError("FakeItsme.rp_jwks is not set")
        if callable(source):
            data: Any = source()
        elif isinstance(source, str):
            data = requests.get(source, timeout=5).content
        else:
            data = source
        return json.loads(data)["keys"]

    def _rp_key(self, use: str, kid: str | None = None) -> RSAKey | None:
        for jwk in self._rp_jwks():
            if jwk.get("kty") == "RSA" and jwk.get("use") == use and (kid is None or jwk.get("kid") == kid):
                return RSAKey.import_key(jwk)
        return None

    # -- nested JWTs ---------------------------------------------------------
    def _pack(self, claims: dict[str, Any], form: TokenForm) -> str:
        claims = dict(claims)
        for name, value in form.claims.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        payload = json.dumps(claims).encode()
        if form.sign_alg == "none":
            signed = f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(payload)}."
        elif form.sign_alg == "HS256":  # the classic confusion: the public key as an HMAC secret
            key = self._signing_keys[0]
            head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
            signing_input = f"{head}.{_b64(payload)}"
            mac = hmac.new(key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
            signed = f"{signing_input}.{_b64(mac)}"
        else:
            key = self._unknown_sig_key if form.sign_with_unknown_key else self._signing_keys[0]
            header = {"alg": form.sign_alg, "typ": "JWT", "kid": key.kid}
            signed = jws.serialize_compact(header, payload, key, algorithms=[form.sign_alg])
        if not form.encrypted:
            return signed
        enc_key = self._unknown_enc_key if form.encrypt_to_unknown_key else self._rp_key("enc")
        if enc_key is None:
            raise ValueError("the client's JWKS has no enc key")
        header = {"alg": form.jwe_alg, "enc": form.jwe_enc, "cty": "JWT"}
        if enc_key.kid:
            header["kid"] = enc_key.kid
        with warnings.catch_warnings():  # the fake may be asked for deprecated algorithms on purpose
            warnings.simplefilter("ignore", SecurityWarning)
            return jwe.encrypt_compact(header, signed, enc_key, algorithms=[form.jwe_alg, form.jwe_enc])


def _oauth_error(error: str, description: str = "", status: int = 400) -> Any:
    body = {"error": error, **({"error_description": description} if description else {})}
    return jsonify(body), status
