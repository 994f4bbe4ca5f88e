"""Races on single-use credentials, over real HTTP against a threaded server (SQLite and PostgreSQL).

Two concurrent redemptions of one code: exactly one succeeds. Two
concurrent uses of one public client's refresh token: at most one succeeds,
and the token family is revoked.
"""

from __future__ import annotations

import base64
import threading

import pytest
import requests

from tests.conftest import PORTAL_SECRET, authorize_params
from tests.support.oidc import APP_REDIRECT, get_code, inject_sso

ROUNDS = 4


def race(n: int, call):
    """Run ``call`` in n threads released at the same instant; their results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i):
        barrier.wait()
        results[i] = call()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.fixture
def server(live_server, make_user):
    sub = make_user()
    srv = live_server()
    srv.browser = srv.app.test_client()  # the person's browser, to get codes
    inject_sso(srv.app, srv.browser, sub)
    return srv


def basic_header() -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"portal:{PORTAL_SECRET}".encode()).decode()}


@pytest.mark.parametrize("n", [2, 6])
def test_concurrent_redemptions_of_one_code_exactly_one_succeeds(server, n):
    for _ in range(ROUNDS):
        params, verifier = authorize_params()
        code = get_code(server.browser, params)["code"]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": params["redirect_uri"],
            "code_verifier": verifier,
        }
        responses = race(
            n,
            lambda data=data: requests.post(
                server.url + "/token", data=data, headers=basic_header(), timeout=30
            ),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [400] * (n - 1), [r.text for r in responses]
        assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)


def test_concurrent_redemptions_by_a_public_client_exactly_one_succeeds(server):
    for _ in range(ROUNDS):
        params, verifier = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
        code = get_code(server.browser, params)["code"]
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": "app",
        }
        responses = race(2, lambda data=data: requests.post(server.url + "/token", data=data, timeout=30))
        assert sorted(r.status_code for r in responses) == [200, 400], [r.text for r in responses]


def _app_tokens(server) -> dict:
    params, verifier = authorize_params(client_id="app", redirect_uri=APP_REDIRECT)
    code = get_code(server.browser, params)["code"]
    resp = requests.post(
        server.url + "/token",
        timeout=30,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": APP_REDIRECT,
            "code_verifier": verifier,
            "client_id": "app",
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("n", [2, 6])
def test_concurrent_uses_of_one_public_refresh_token_at_most_one_succeeds_and_the_family_dies(server, n):
    for _ in range(ROUNDS):
        tokens = _app_tokens(server)
        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "app"}
        responses = race(n, lambda data=data: requests.post(server.url + "/token", data=data, timeout=30))
        ok = [r for r in responses if r.status_code == 200]
        assert len(ok) <= 1, [r.text for r in responses]
        assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
        # the family is revoked: every refresh token and access token of it stops working
        for r in ok:
            again = requests.post(
                server.url + "/token",
                timeout=30,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": r.json()["refresh_token"],
                    "client_id": "app",
                },
            )
            assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
            info = requests.get(
                server.url + "/userinfo",
                timeout=30,
                headers={"Authorization": "Bearer " + r.json()["access_token"]},
            )
            assert info.status_code == 401
        info = requests.get(
            server.url + "/userinfo",
            timeout=30,
            headers={"Authorization": "Bearer " + tokens["access_token"]},
        )
        assert info.status_code == 401
