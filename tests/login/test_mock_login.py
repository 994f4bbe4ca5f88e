"""The development login (connectors.mock): the connector contract, the pages, and its refusal
in production."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from connectors.base import ConnectorError, RedirectConnector
from connectors.config import ConfigErrors, ConfigTable
from connectors.mock import MockConnector, MockSettings
from idp.config import load as load_settings
from idp.core.storage import Account, FederatedIdentity, db

MOCK = {"subject": "dev-7", "given_name": "Dana", "family_name": "Developer", "level": "substantial"}


def connector(clock=lambda: 1000.0) -> MockConnector:
    settings = MockSettings.from_table(ConfigTable(MOCK, "idp.toml"))
    return MockConnector(settings, "https://idp.example/login/mock/callback", clock=clock)


def test_the_mock_connector_keeps_the_redirect_contract():
    mock = connector()
    assert isinstance(mock, RedirectConnector)
    url, transaction = mock.begin(level="low", locale="fr")
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    identity = mock.complete(params, transaction)
    assert (identity.method, identity.subject, identity.level) == ("mock", "dev-7", "substantial")


@pytest.mark.parametrize(
    "change, code",
    [
        ({"state": "other"}, "invalid_state"),
        ({"code": "other"}, "invalid_token"),
        ({"error": "access_denied"}, "cancelled"),
    ],
)
def test_the_mock_connector_refuses_an_answer_that_is_not_its_own(change, code):
    mock = connector()
    url, transaction = mock.begin(level="low", locale="fr")
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    with pytest.raises(ConnectorError) as raised:
        mock.complete({**params, **change}, transaction)
    assert raised.value.code == code


def test_the_mock_connector_refuses_a_level_its_person_does_not_reach():
    with pytest.raises(ConnectorError) as raised:
        connector().begin(level="high", locale="fr")
    assert raised.value.code == "insufficient_level"


def test_production_refuses_the_mock_connector():
    env = {"S": "s" * 40, "K": "k" * 40, "T": "t" * 40}
    overrides = {
        "provider": {"issuer": "https://idp.example", "environment": "production", "secret_key": "env:S"},
        "storage": {"database_url": "postgresql://db/idp", "kv_url": "redis://127.0.0.1:6379/0"},
        "keys": {"passphrase": "env:K"},
        "connectors": {"mock": MOCK},
    }
    with pytest.raises(ConfigErrors) as raised:
        load_settings(overrides=overrides, environ=env, instance_dir="/tmp/idp-mock")
    assert "connectors.mock: is a development connector, refused in production" in str(raised.value)


def test_a_development_login_through_the_pages_links_one_account(make_app):
    app = make_app({"connectors": {"mock": MOCK}})
    client = app.test_client()
    start = client.get("/login/-/mock")
    assert start.status_code == 303 and "/login/mock/callback?" in start.location
    done = client.get(urlsplit(start.location).path + "?" + urlsplit(start.location).query)
    assert done.status_code == 303
    replay = client.get(urlsplit(start.location).path + "?" + urlsplit(start.location).query)
    assert replay.status_code == 400  # the state is used once
    with app.app_context():
        links = db.session.query(FederatedIdentity).filter_by(issuer="urn:idp:mock").all()
        assert [link.subject for link in links] == ["dev-7"]
        assert db.session.get(Account, links[0].account_id).given_name == "Dana"


def test_without_its_table_the_development_login_does_not_exist(make_app):
    assert make_app().test_client().get("/login/-/mock").status_code == 404
