"""An RP library this project did not write — openid-client 6 for Node (panva) — runs the
portal at FAPI 2.0 against the live provider over real HTTP: PAR with a DPoP proof,
``private_key_jwt`` (``aud`` = issuer), PKCE, the code exchange and a refresh with DPoP
proofs (the server nonce handled by the library), userinfo with ``DPoP`` auth. The same
access token without its proof is refused.

openid-client is installed from the npm registry into ``tests/interop/node_modules``
(``package.json`` pins the major version) when missing. Without Node or npm the test
skips with the reason, and fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from joserfc.jwk import ECKey

from tests.oidc.test_fapi2_profile import fapi_client
from tests.oidc.test_rp_library import browser_login

INTEROP = Path(__file__).resolve().parents[1] / "interop"
REDIRECT = "https://fapi.example.com/cb"


def require_openid_client() -> None:
    reason = None
    if not (shutil.which("node") and shutil.which("npm")):
        reason = "Node.js and npm are needed for openid-client"
    elif not (INTEROP / "node_modules" / "openid-client").exists():
        done = subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(INTEROP)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            reason = "npm install of openid-client failed: " + done.stderr[-500:]
    if reason:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def fapi_provider(live_server, make_user, tmp_path):
    require_openid_client()
    from tests.conftest import base_config

    key = ECKey.generate_key("P-256")
    make_user()
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"] + [fapi_client(tmp_path, key)]
    server = live_server({"clients": clients})
    server.client_key = key
    return server


def test_openid_client_logs_in_with_par_and_dpop_refreshes_and_calls_userinfo(fapi_provider):
    server = fapi_provider
    private_jwk = {**server.client_key.as_dict(private=True), "kid": "k1"}
    env = {
        **os.environ,
        "RP_CONFIG": json.dumps(
            {"issuer": server.url, "clientId": "fapi", "privateJwk": private_jwk, "redirectUri": REDIRECT}
        ),
    }
    rp = subprocess.Popen(
        ["node", str(INTEROP / "fapi2_rp.mjs")],
        cwd=INTEROP,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = json.loads(rp.stdout.readline() or "{}")
        assert "authorize" in first, (first, rp.stderr.read() if rp.poll() is not None else "")
        url = first["authorize"]
        assert url.startswith(server.url + "/authorize?") and "request_uri=urn" in url
        callback = browser_login(server, requests.Session(), url)
        assert callback.startswith(REDIRECT + "?"), callback
        rp.stdin.write(json.dumps({"callback": callback}) + "\n")
        rp.stdin.close()
        result = json.loads(rp.stdout.readline() or "{}")
        assert rp.wait(30) == 0, (result, rp.stderr.read())
    finally:
        if rp.poll() is None:
            rp.kill()
    tokens, refreshed = result["tokens"], result["refreshed"]
    assert tokens["token_type"].lower() == "dpop" and refreshed["token_type"].lower() == "dpop"
    assert result["userinfo"]["sub"] == result["claims"]["sub"]
    assert result["userinfo"]["email"] == "alice@example.com"

    # The same access token without its proof is refused, as Bearer or as DPoP.
    for scheme in ("Bearer", "DPoP"):
        resp = requests.get(
            server.url + "/userinfo",
            headers={"Authorization": f"{scheme} {refreshed['access_token']}"},
            timeout=10,
        )
        assert resp.status_code == 401, (scheme, resp.text)
