"""/metrics: Prometheus text, only for allowed networks or the bearer token; the counters move."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from idp.core import metrics
from tests.conftest import authorize_params, exchange, get_code, login_with_password
from tests.login.test_itsme_login import (  # noqa: F401 (the "fake", "keys_template" and "itsme_config" fixtures)
    add_known_person,
    at_itsme,
    fake,
    itsme_config,
    keys_template,
    to_itsme,
    to_login_page,
)

TOKEN = "m" * 40
WITH_TOKEN = {"metrics": {"token": "env:IDP_TEST_METRICS_TOKEN"}}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def _token_env(monkeypatch):
    monkeypatch.setenv("IDP_TEST_METRICS_TOKEN", TOKEN)


def scrape(client) -> dict[tuple[str, tuple], float]:
    resp = client.get("/metrics", headers=BEARER)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_do_not_exist_until_configured(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer " + "x" * 40}, {"Authorization": TOKEN}])
def test_metrics_refuse_a_missing_or_wrong_token(make_app, headers):
    client = make_app(WITH_TOKEN).test_client()
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 403
    assert "idp_" not in resp.get_data(as_text=True)


def test_metrics_answer_the_token_without_opening_a_session(make_app):
    client = make_app(WITH_TOKEN).test_client()
    resp = client.get("/metrics", headers=BEARER)
    assert resp.status_code == 200
    assert "idp_http_requests_total" in resp.get_data(as_text=True)
    assert "Set-Cookie" not in resp.headers


@pytest.mark.parametrize(("networks", "status"), [(["127.0.0.0/8"], 200), (["10.0.0.0/8", "::1/128"], 403)])
def test_metrics_answer_allowed_networks_only(make_app, networks, status):
    client = make_app({"metrics": {"allowed_networks": networks}}).test_client()
    assert client.get("/metrics").status_code == status  # the test client comes from 127.0.0.1


def test_metrics_settings_are_checked(make_app, monkeypatch):
    from connectors.config import ConfigErrors

    monkeypatch.setenv("IDP_TEST_SHORT", "short")
    with pytest.raises(ConfigErrors) as exc:
        make_app({"metrics": {"allowed_networks": ["nonsense"], "token": "env:IDP_TEST_SHORT"}})
    text = str(exc.value)
    assert "metrics.allowed_networks[0]" in text and "metrics.token" in text


def test_a_password_login_moves_the_login_token_message_and_session_metrics(make_app, make_user_in_app):
    app = make_app(WITH_TOKEN)
    make_user_in_app(app)
    client = app.test_client()
    before = scrape(client)
    params, verifier = authorize_params()
    code = get_code(client, params)["code"]
    assert exchange(client, code, verifier).status_code == 200
    after = scrape(client)

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("idp_logins_started_total", method="password") == 1
    assert moved("idp_logins_completed_total", method="password") == 1
    assert moved("idp_tokens_issued_total", grant_type="authorization_code") == 1
    assert moved("idp_messages_total", channel="sms", outcome="sent") == 1
    assert moved("idp_http_requests_total", endpoint="/token", method="POST", status="200") == 1
    assert moved("idp_http_request_duration_seconds_count", endpoint="/token", method="POST") == 1
    assert value(after, "idp_sso_sessions_active") == 1
    assert value(after, "idp_sms_budget_used") == 1
    assert value(after, "idp_sms_budget_limit") == 10000


def test_a_wrong_password_counts_as_a_failed_login_with_its_reason(make_app, make_user_in_app):
    app = make_app(WITH_TOKEN)
    make_user_in_app(app)
    client = app.test_client()
    before = scrape(client)
    resp = client.get("/authorize", query_string=authorize_params()[0])
    login_with_password(client, resp.location, password="wrong password here")
    after = scrape(client)
    labels = {"method": "password", "reason": "password"}
    assert (
        value(after, "idp_logins_failed_total", **labels) - value(before, "idp_logins_failed_total", **labels)
        == 1
    )


def test_upstream_calls_are_timed_and_failures_counted():
    def errors():
        return metrics.UPSTREAM_ERRORS.labels("test_upstream")._value.get()

    def calls():
        return sum(b.get() for b in metrics.UPSTREAM_DURATION.labels("test_upstream")._buckets)

    with metrics.upstream("test_upstream"):
        pass
    with pytest.raises(ConnectionError), metrics.upstream("test_upstream"):
        raise ConnectionError
    assert calls() == 2 and errors() == 1


@pytest.fixture
def make_user_in_app():
    from tests.conftest import make_user_in

    return make_user_in


def test_an_itsme_login_times_the_calls_to_itsme(make_app, itsme_config, fake, make_user_in_app):  # noqa: F811
    app = make_app({**itsme_config(), **WITH_TOKEN})
    fake.rp_jwks = app.extensions["idp.itsme.keys"].public_jwks_bytes
    add_known_person(app)
    client = app.test_client()
    before = scrape(client)
    _params, _verifier, tx_path = to_login_page(client)
    back = at_itsme(to_itsme(client, tx_path))
    assert client.get(f"{urlsplit(back).path}?{urlsplit(back).query}").status_code == 303
    after = scrape(client)
    calls = "idp_upstream_request_duration_seconds_count"
    assert (
        value(after, calls, upstream="itsme") - value(before, calls, upstream="itsme") >= 2
    )  # token, userinfo
    assert value(after, "idp_logins_started_total", method="itsme") >= 1
