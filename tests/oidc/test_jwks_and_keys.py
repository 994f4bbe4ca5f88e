"""Signing keys: the JWKS, algorithms, encryption at rest, rotation, RFC 8725 rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from idp.cli import main as idp_cli
from tests.support.oidc import decode, portal_tokens, unverified, userinfo

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def test_jwks_holds_only_public_asymmetric_keys_with_distinct_kids(client):
    resp = client.get("/jwks.json")
    assert resp.status_code == 200
    keys = json.loads(resp.data)["keys"]
    assert keys
    for key in keys:
        assert key["kty"] in ("RSA", "EC")
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["use"] == "sig" and key["alg"] in ("RS256", "PS256", "ES256") and key["kid"]
    kids = [k["kid"] for k in keys]
    assert len(kids) == len(set(kids))


def test_jwks_is_cacheable(client):
    resp = client.get("/jwks.json")
    assert "max-age" in resp.headers["Cache-Control"] and "no-store" not in resp.headers["Cache-Control"]
    assert resp.mimetype in ("application/json", "application/jwk-set+json")


def test_id_token_is_rs256_by_default_with_a_kid_from_the_jwks(client, user):
    tokens = portal_tokens(client)
    header, claims = decode(client, tokens["id_token"])
    assert header["alg"] == "RS256"
    assert header["kid"] in {k["kid"] for k in json.loads(client.get("/jwks.json").data)["keys"]}
    assert claims["sub"] == user


@pytest.mark.parametrize("alg", ["ES256", "PS256"])
def test_other_signing_algorithms_are_selectable(make_app, make_user, alg):
    make_user()
    app = make_app({"keys": {"algorithm": alg}})
    client = app.test_client()
    tokens = portal_tokens(client)
    header, _claims = decode(client, tokens["id_token"])
    assert header["alg"] == alg
    _, access = decode(client, tokens["access_token"], typ="at+jwt")
    assert access["client_id"] == "portal"


def test_private_keys_are_encrypted_at_rest(app):
    from idp.core.storage import SigningKey, db

    with app.app_context():
        rows = db.session.query(SigningKey).all()
        assert rows
        for row in rows:
            assert row.private_pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            with pytest.raises(TypeError):
                serialization.load_pem_private_key(row.private_pem.encode(), None)
            with pytest.raises(ValueError):
                serialization.load_pem_private_key(row.private_pem.encode(), b"not the passphrase")
        active = [r for r in rows if r.retired_at is None]
        assert len(active) == 1
        serialization.load_pem_private_key(
            active[0].private_pem.encode(), b"test keys passphrase, not for production"
        )


def test_keys_rotate_signs_with_new_key_and_keeps_old_public_key_until_its_tokens_expire(app, client, user):
    from idp.core.storage import SigningKey, db

    before = portal_tokens(client)
    old_kid = unverified(before["id_token"])[0]["kid"]

    result = app.test_cli_runner().invoke(idp_cli, ["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "new signing key" in result.output

    after = portal_tokens(client)
    new_kid = unverified(after["id_token"])[0]["kid"]
    assert new_kid != old_kid
    kids = {k["kid"] for k in json.loads(client.get("/jwks.json").data)["keys"]}
    assert {old_kid, new_kid} <= kids
    # tokens signed before the rotation still verify and still work
    decode(client, before["id_token"])
    assert userinfo(client, before["access_token"]).status_code == 200

    ring = app.extensions["idp.keys"]
    with app.app_context():
        old = db.session.get(SigningKey, old_kid)
        _, old_claims = unverified(before["access_token"])
        _, old_id_claims = unverified(before["id_token"])
        assert old.retired_at is not None
        assert old.drop_after >= max(old_claims["exp"], old_id_claims["exp"])
        assert ring.prune(now=old.drop_after - 1) == 0  # not before every token it signed expired
        assert ring.prune(now=old.drop_after + 1) >= 1
    kids = {k["kid"] for k in json.loads(client.get("/jwks.json").data)["keys"]}
    assert old_kid not in kids and new_kid in kids


def test_keys_list_shows_active_and_retired_keys(app):
    runner = app.test_cli_runner()
    assert runner.invoke(idp_cli, ["keys", "rotate"]).exit_code == 0
    out = runner.invoke(idp_cli, ["keys", "list"]).output
    assert "active" in out and "retired" in out


# ---------------------------------------------------------------------------
# RFC 8725: algorithm per key, no "none", no key from the token, types not interchangeable
# ---------------------------------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _hmac_signed(header: dict, claims: dict, secret: bytes) -> str:
    """The classic confusion attack: the public key (PEM) as an HMAC secret."""
    signing_input = _b64(header) + "." + _b64(claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _forge_variants(client, genuine: str) -> dict[str, str]:
    header, claims = unverified(genuine)
    jwks = json.loads(client.get("/jwks.json").data)
    ours = RSAKey.import_key(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    attacker = RSAKey.generate_key(2048, parameters={"kid": header["kid"]})
    pem = ours.as_pem(private=False)
    return {
        "alg_none": _b64({"alg": "none", "typ": header["typ"], "kid": header["kid"]})
        + "."
        + _b64(claims)
        + ".",
        "hs256_with_public_key": _hmac_signed(
            {"alg": "HS256", "kid": header["kid"], "typ": header["typ"]}, claims, pem
        ),
        "embedded_jwk": jwt.encode(
            {
                "alg": "RS256",
                "kid": header["kid"],
                "typ": header["typ"],
                "jwk": attacker.as_dict(private=False),
            },
            claims,
            attacker,
        ),
        "jku": jwt.encode(
            {"alg": "RS256", "kid": header["kid"], "typ": header["typ"], "jku": "https://evil.example/jwks"},
            claims,
            attacker,
        ),
        "unknown_kid": jwt.encode(
            {"alg": "RS256", "kid": "nope", "typ": header["typ"]}, claims, RSAKey.generate_key(2048)
        ),
        "tampered_claims": genuine.split(".")[0]
        + "."
        + _b64({**claims, "sub": "someone-else"})
        + "."
        + genuine.split(".")[2],
    }


@pytest.mark.parametrize(
    "variant", ["alg_none", "hs256_with_public_key", "embedded_jwk", "jku", "unknown_kid", "tampered_claims"]
)
def test_userinfo_refuses_forged_access_tokens(client, user, variant):
    tokens = portal_tokens(client)
    forged = _forge_variants(client, tokens["access_token"])[variant]
    resp = userinfo(client, forged)
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_signing_key_is_not_usable_with_another_algorithm(app):
    ring = app.extensions["idp.keys"]
    with app.app_context():
        key = RSAKey.import_key(ring.active.key.as_pem(private=True))  # the same key, without its "alg"
        token = jwt.encode(
            {"alg": "PS256", "kid": ring.active.kid, "typ": "at+jwt"},
            {"iss": "http://localhost", "jti": "x"},
            key,
            algorithms=["PS256"],
        )
        with pytest.raises(Exception):  # noqa: B017, PT011 - any refusal
            ring.verify(token, typ="at+jwt")


def test_a_key_of_another_issuer_never_verifies(app):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key = RSAKey.import_key(
        other.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    token = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, {"iss": "http://localhost"}, key)
    with app.app_context(), pytest.raises(Exception):  # noqa: B017, PT011
        app.extensions["idp.keys"].verify(token, typ="at+jwt")


def test_db_upgrade_makes_the_first_signing_key_of_a_fresh_database(app):
    """Production never makes keys by itself: `idp db upgrade` leaves a database ready to sign."""
    from sqlalchemy import delete, func, select

    from idp.cli import main as idp_cli
    from idp.core.storage import SigningKey, db

    with app.app_context():
        db.session.execute(delete(SigningKey))
        db.session.commit()
    result = app.test_cli_runner().invoke(idp_cli, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        active = db.session.scalar(
            select(func.count()).select_from(SigningKey).where(SigningKey.retired_at.is_(None))
        )
    assert active == 1
