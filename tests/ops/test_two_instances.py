"""More than one instance: two gunicorn servers on two ports share PostgreSQL and Redis.

Nothing that matters lives in one instance: a login started on one finishes
on the other, the SSO session made on one is honoured by the other, a code
minted on one is redeemed on the other, a password lockout counts the
failures made on both, a signing key rotated in the shared database is used
by both within ``keys.reload_interval``, and each instance's ``/metrics``
adds up its gunicorn workers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port
from tests.fakes.sms_gateway import FakeSmsGateway
from tests.support.own_services import OwnRedis
from tests.support.production import (
    PASSWORD,
    PHONE,
    PORTAL_SECRET,
    SECRETS,
    Browser,
    Database,
    Gunicorn,
    clean_env,
    code_of,
    redeem,
    tls_pair,
    write_config,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(
    not os.environ.get("IDP_TEST_DATABASE_URL"), reason="needs PostgreSQL (IDP_TEST_DATABASE_URL)"
)
RELOAD = 1  # keys.reload_interval for this test, seconds


def idp(env: dict, *args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "idp.cli", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(instance A with two workers, instance B, the SMS gateway, the environment, the certificate)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    cert, key = tls_pair(tmp_path)
    database = Database(os.environ["IDP_TEST_DATABASE_URL"])
    redis = OwnRedis().start()
    gateway = FakeSmsGateway().start()
    servers = []
    try:
        port_a = free_port()
        config = write_config(
            tmp_path,
            f"https://127.0.0.1:{port_a}",
            database.url,
            redis.url,
            gateway.url,
            keys=f'[keys]\npassphrase = "env:IDP_KEYS_PASSPHRASE"\nreload_interval = {RELOAD}\n',
        )
        env = clean_env(IDP_CONFIG=str(config), SMS_TOKEN=gateway.auth_value, PYTHONPATH=str(ROOT))
        idp(env, "db", "upgrade")
        idp(env, "users", "create", "alice", "--email", "a@example.com", "--phone", PHONE, "--password-stdin",
            stdin=PASSWORD + "\n")  # fmt: skip
        database.execute("UPDATE accounts SET terms_version = '2026-01'")
        gunicorn = [sys.executable, "-m", "gunicorn"]
        servers.append(Gunicorn(gunicorn, env, tmp_path, cert, key, workers=2, port=port_a))
        servers.append(Gunicorn(gunicorn, env, tmp_path, cert, key, workers=1))
        yield servers[0], servers[1], gateway, env, cert
    finally:
        for server in servers:
            server.stop()
        gateway.stop()
        redis.close()
        database.drop()


def last_sms_code(gateway) -> str:
    return re.search(r"\b(\d{6})\b", gateway.next_text(PHONE)).group(1)


def kid_of(token: str) -> str:
    import base64
    import json

    header = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]


def refresh(base: str, cert: Path, refresh_token: str) -> dict:
    resp = requests.post(
        base + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=("portal", PORTAL_SECRET),
        verify=str(cert),
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_two_instances_share_logins_sessions_codes_lockouts_and_keys(cluster):
    a, b, gateway, env, cert = cluster
    browser = Browser(cert)

    # A login begun on A finishes on B (transaction and browser session in Redis) ...
    resp, verifier = browser.authorize(a.url)
    resp = browser.password_step(a.url, resp.headers["Location"])
    assert resp.status_code == 303, resp.text
    resp = browser.code_step(b.url, resp.headers["Location"], last_sms_code(gateway))
    assert resp.status_code == 303, resp.text
    resp = browser.get(a.url, resp.headers["Location"])
    assert resp.status_code == 302, resp.text
    # ... and the code minted on A is redeemed on B.
    tokens = redeem(b.url, cert, code_of(resp.headers["Location"]), verifier)
    assert tokens.status_code == 200, tokens.text

    # The SSO session made on A is honoured by B: a code at once, no login page; A redeems it.
    resp, verifier = browser.authorize(b.url)
    assert resp.status_code == 302 and resp.headers["Location"].startswith("https://portal.example.com/")
    tokens = redeem(a.url, cert, code_of(resp.headers["Location"]), verifier)
    assert tokens.status_code == 200, tokens.text
    refresh_token = tokens.json()["refresh_token"]
    old_kid = kid_of(tokens.json()["id_token"])

    # A key rotated in the shared database is used by both within keys.reload_interval.
    new_kid = re.search(r"new signing key (\S+);", idp(env, "keys", "rotate")).group(1)
    assert new_kid != old_kid
    for server in (b, a):
        deadline = time.monotonic() + RELOAD + 10
        while True:
            issued = refresh(server.url, cert, refresh_token)
            refresh_token = issued.get("refresh_token", refresh_token)  # rotated for public clients
            if kid_of(issued["id_token"]) == new_kid or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert kid_of(issued["id_token"]) == new_kid, server.url
        jwks = requests.get(server.url + "/jwks.json", verify=str(cert), timeout=10).json()
        assert {new_kid, old_kid} <= {k["kid"] for k in jwks["keys"]}  # the old one until its tokens expire

    # Password failures made on both instances add up to one lockout (password_max_failures = 3).
    stranger = Browser(cert)
    statuses = []
    for server in (a, b, a):
        resp, _ = stranger.authorize(server.url)
        statuses.append(
            stranger.password_step(server.url, resp.headers["Location"], "wrong password").status_code
        )
    assert statuses == [400, 400, 429]
    resp, _ = stranger.authorize(b.url)
    locked = stranger.password_step(b.url, resp.headers["Location"], PASSWORD)
    assert locked.status_code == 429 and "Too many failed attempts" in locked.text


def test_metrics_of_an_instance_add_up_its_workers(cluster):
    a, _b, _gateway, _env, cert = cluster
    path = "/.well-known/openid-configuration"

    def served() -> float:
        resp = requests.get(
            a.url + "/metrics",
            headers={"Authorization": f"Bearer {SECRETS['IDP_METRICS_TOKEN']}"},
            verify=str(cert),
            timeout=10,
        )
        assert resp.status_code == 200
        return sum(
            sample.value
            for family in text_string_to_metric_families(resp.text)
            for sample in family.samples
            if sample.name == "idp_http_requests_total" and sample.labels.get("endpoint") == path
        )

    before = served()
    for _ in range(12):  # new connections: gunicorn's two sync workers take turns accepting them
        assert requests.get(a.url + path, verify=str(cert), timeout=10).status_code == 200
    assert served() - before == 12
