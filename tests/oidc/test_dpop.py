"""DPoP (RFC 9449): proofs checked at the token endpoint, access tokens bound with
``cnf.jkt``, the binding honoured at userinfo and introspection, a public client's
refresh tokens and ``dpop_jkt``-bound codes usable only with their key."""

from __future__ import annotations

import time

import pytest

from tests.conftest import authorize_params, exchange
from tests.support.dpop import DPoPKey
from tests.support.oidc import APP_REDIRECT, basic, clients_with, code_for, get_code, unverified

ISSUER = "http://localhost"


def code_data(code, verifier, client_id="portal", redirect_uri="https://portal.example.com/callback"):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    if client_id != "portal":
        data["client_id"] = client_id
    return data


def portal_dpop_tokens(client, key: DPoPKey, **extra):
    code, verifier, _ = code_for(client, **extra)
    resp = key.post(client, "/token", code_data(code, verifier), basic())
    assert resp.status_code == 200, resp.json
    return resp


def dpop_userinfo(client, key: DPoPKey, token: str, **override):
    proof = key.proof("GET", ISSUER + "/userinfo", access_token=token, **override)
    return client.get("/userinfo", headers={"Authorization": "DPoP " + token, "DPoP": proof})


def test_discovery_lists_the_dpop_algorithms(client):
    algs = client.get("/.well-known/openid-configuration").json["dpop_signing_alg_values_supported"]
    assert "ES256" in algs and "none" not in algs and not [a for a in algs if a.startswith("HS")]


def test_the_token_endpoint_asks_for_its_nonce_first_without_using_the_code_up(client, user):
    key = DPoPKey()
    code, verifier, _ = code_for(client)
    first = client.post(
        "/token",
        data=code_data(code, verifier),
        headers={**basic(), "DPoP": key.proof("POST", ISSUER + "/token")},
    )
    assert first.status_code == 400 and first.json["error"] == "use_dpop_nonce"
    key.nonce = first.headers["DPoP-Nonce"]
    second = client.post(
        "/token",
        data=code_data(code, verifier),
        headers={**basic(), "DPoP": key.proof("POST", ISSUER + "/token")},
    )
    assert second.status_code == 200, second.json  # the same code, still good
    assert second.json["token_type"] == "DPoP"
    assert unverified(second.json["access_token"])[1]["cnf"] == {"jkt": key.jkt}


def test_a_bound_token_works_at_userinfo_only_with_a_proof_of_its_key(client, user):
    key = DPoPKey()
    token = portal_dpop_tokens(client, key).json["access_token"]
    assert dpop_userinfo(client, key, token).status_code == 200
    bearer = client.get("/userinfo", headers={"Authorization": "Bearer " + token})
    assert bearer.status_code == 401 and bearer.headers["WWW-Authenticate"].startswith("DPoP")
    no_proof = client.get("/userinfo", headers={"Authorization": "DPoP " + token})
    assert no_proof.status_code == 401
    assert dpop_userinfo(client, DPoPKey(), token).status_code == 401  # another key
    assert dpop_userinfo(client, key, token, htu=ISSUER + "/token").status_code == 401
    assert dpop_userinfo(client, key, token, htm="POST").status_code == 401
    assert dpop_userinfo(client, key, token, ath="x" * 43).status_code == 401
    proof = key.proof("GET", ISSUER + "/userinfo", access_token=token)
    headers = {"Authorization": "DPoP " + token, "DPoP": proof}
    assert client.get("/userinfo", headers=headers).status_code == 200
    assert client.get("/userinfo", headers=headers).status_code == 401  # the same proof again


def test_a_bearer_token_is_not_accepted_with_the_dpop_scheme(client, user):
    code, verifier, _ = code_for(client)
    token = exchange(client, code, verifier).json["access_token"]
    key = DPoPKey()
    assert dpop_userinfo(client, key, token).status_code == 401


@pytest.mark.parametrize(
    "override",
    [
        {"header": {"typ": "JWT"}},
        {"header": {"alg": "HS256"}},
        {"htm": "GET"},
        {"htu": "https://elsewhere.example/token"},
        {"iat": -600},  # seconds from now
        {"iat": 600},
        {"jti": None},
        {"nonce": "not-ours"},
    ],
)
def test_bad_proofs_are_refused_at_the_token_endpoint(client, user, override):
    key = DPoPKey()
    portal_dpop_tokens(client, key)  # learns the nonce
    code, verifier, _ = code_for(client)
    override = dict(override)  # the parameters are shared by both databases' runs
    header = override.pop("header", None)
    if "iat" in override:
        override["iat"] += int(time.time())
    if header and header.get("alg") == "HS256":
        proof = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkhTMjU2In0.eyJqdGkiOiJ4In0.c2ln"
    else:
        proof = key.proof("POST", ISSUER + "/token", header=header or {}, **override)
    resp = client.post("/token", data=code_data(code, verifier), headers={**basic(), "DPoP": proof})
    assert resp.status_code == 400 and resp.json["error"] in ("invalid_dpop_proof", "use_dpop_nonce"), (
        resp.json
    )


def test_a_private_key_in_the_proof_is_refused(client, user):
    key = DPoPKey()
    portal_dpop_tokens(client, key)
    code, verifier, _ = code_for(client)
    from joserfc import jwt

    proof = jwt.encode(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.key.as_dict(private=True)},
        {
            "jti": "j" * 16,
            "htm": "POST",
            "htu": ISSUER + "/token",
            "iat": int(time.time()),
            "nonce": key.nonce,
        },
        key.key,
    )
    resp = client.post("/token", data=code_data(code, verifier), headers={**basic(), "DPoP": proof})
    assert resp.json["error"] == "invalid_dpop_proof"


def test_a_replayed_proof_is_refused(client, user):
    key = DPoPKey()
    refresh_token = portal_dpop_tokens(client, key).json["refresh_token"]
    proof = key.proof("POST", ISSUER + "/token")
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    assert client.post("/token", data=data, headers={**basic(), "DPoP": proof}).status_code == 200
    again = client.post("/token", data=data, headers={**basic(), "DPoP": proof})
    assert again.status_code == 400 and again.json["error"] == "invalid_dpop_proof"


def app_tokens_with(client, key: DPoPKey):
    code, verifier, _ = code_for(client, client_id="app", redirect_uri=APP_REDIRECT)
    resp = key.post(client, "/token", code_data(code, verifier, "app", APP_REDIRECT))
    assert resp.status_code == 200, resp.json
    return resp.json


def test_a_public_clients_refresh_token_is_bound_to_its_key(client, user):
    key = DPoPKey()
    tokens = app_tokens_with(client, key)
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app"}
    assert client.post("/token", data=data).json["error"] == "invalid_grant"  # no proof
    assert DPoPKey().post(client, "/token", data).json["error"] == "invalid_grant"  # another key
    refreshed = key.post(client, "/token", data)
    assert refreshed.status_code == 200 and refreshed.json["token_type"] == "DPoP"
    assert unverified(refreshed.json["access_token"])[1]["cnf"] == {"jkt": key.jkt}


def test_a_confidential_clients_refresh_may_use_a_new_key(client, user):
    tokens = portal_dpop_tokens(client, DPoPKey()).json
    other = DPoPKey()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    resp = other.post(client, "/token", data, basic())
    assert resp.status_code == 200 and unverified(resp.json["access_token"])[1]["cnf"] == {"jkt": other.jkt}


def test_dpop_jkt_at_the_authorization_endpoint_binds_the_code(client, user):
    key = DPoPKey()
    params, verifier = authorize_params(dpop_jkt=key.jkt)
    code = get_code(client, params)["code"]
    assert exchange(client, code, verifier).json["error"] == "invalid_grant"  # no proof
    params, verifier = authorize_params(dpop_jkt=key.jkt)
    code = get_code(client, params)["code"]
    assert (
        DPoPKey().post(client, "/token", code_data(code, verifier), basic()).json["error"] == "invalid_grant"
    )
    params, verifier = authorize_params(dpop_jkt=key.jkt)
    code = get_code(client, params)["code"]
    assert key.post(client, "/token", code_data(code, verifier), basic()).status_code == 200


def test_a_proof_at_par_binds_the_code_to_its_key(client, user):
    key = DPoPKey()
    params, verifier = authorize_params()
    pushed = key.post(client, "/par", params, basic())
    assert pushed.status_code == 201, pushed.json
    code = get_code(client, {"client_id": "portal", "request_uri": pushed.json["request_uri"]})["code"]
    assert (
        DPoPKey().post(client, "/token", code_data(code, verifier), basic()).json["error"] == "invalid_grant"
    )


def test_introspection_shows_the_binding(client, user):
    key = DPoPKey()
    token = portal_dpop_tokens(client, key).json["access_token"]
    body = client.post("/introspect", data={"token": token}, headers=basic()).json
    assert body["active"] is True and body["token_type"] == "DPoP" and body["cnf"] == {"jkt": key.jkt}


def test_a_client_that_requires_dpop_is_refused_without_a_proof(make_app, tmp_path, user):
    client = make_app(clients_with({"require_dpop": True}, tmp_path=tmp_path)).test_client()
    code, verifier, _ = code_for(client)
    resp = exchange(client, code, verifier)
    assert resp.status_code == 400 and resp.json["error"] == "invalid_request"


@pytest.mark.parametrize("value", ["x" * 500, "short", "not a thumbprint at all, with spaces!!!!!!!"])
def test_a_malformed_dpop_jkt_is_an_invalid_request(client, value):
    params, _ = authorize_params(dpop_jkt=value)
    from tests.conftest import query_of

    assert query_of(client.get("/authorize", query_string=params).location)["error"] == "invalid_request"
