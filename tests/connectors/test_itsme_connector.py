"""The itsme connector against a local fake itsme speaking the real protocol over HTTP."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest
import requests
from joserfc import jwt

from connectors.base import ConnectorError
from connectors.config import ConfigTable
from connectors.itsme import (
    ACR_ADVANCED,
    ACR_BASIC,
    AMR_ADVANCED,
    AMR_BASIC,
    DISCOVERY_URLS,
    ItsmeConnector,
    ItsmeSettings,
    RPKeys,
)
from connectors.itsme.identity import valid_national_number
from tests.fakes.itsme_provider import (
    DISCOVERY,
    DROP,
    JWKS,
    NATIONAL_NUMBER,
    TOKEN,
    USERINFO,
    FakeItsme,
    TokenForm,
    default_claims,
)

T0 = 1_800_000_000.0
CLIENT_ID = "portal-client"
SERVICE = "PORTAL_LOGIN"
CALLBACK = "http://127.0.0.1:5000/login/itsme/callback"
ENV = {"ITSME_KEYS_PASSPHRASE": "a long passphrase", "ITSME_SECRET": "s3cret-from-itsme"}


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def clock():
    return Clock()


@pytest.fixture(scope="module")
def rp_keys(tmp_path_factory, clock):
    return RPKeys.load_or_create(
        tmp_path_factory.mktemp("itsme") / "keys", ENV["ITSME_KEYS_PASSPHRASE"], clock
    )


@pytest.fixture(scope="module")
def fake_server(rp_keys, clock):
    fake = FakeItsme(
        client_id=CLIENT_ID,
        service_code=SERVICE,
        redirect_uris=[CALLBACK],
        rp_jwks=rp_keys.public_jwks_bytes,
        client_secret=ENV["ITSME_SECRET"],
        clock=clock,
    )
    with fake:
        yield fake


@pytest.fixture
def fake(fake_server, clock):
    clock.t = T0
    fake_server.reset()
    return fake_server


def table(fake: FakeItsme, **overrides) -> ConfigTable:
    data = {
        "environment": "custom",
        "discovery_url": fake.discovery_url,
        "client_id": CLIENT_ID,
        "service_code": SERVICE,
        "redirect_uri": CALLBACK,
        "keys_dir": "/unused",
        "keys_passphrase": "env:ITSME_KEYS_PASSPHRASE",
    }
    data.update(overrides)
    return ConfigTable({k: v for k, v in data.items() if v is not None}, "itsme.toml", environ=ENV)


def settings_for(fake: FakeItsme, **overrides) -> ItsmeSettings:
    t = table(fake, **overrides)
    settings = ItsmeSettings.from_table(t)
    assert t.errors == []
    return settings


@pytest.fixture
def connector(fake, rp_keys, clock):
    return ItsmeConnector(settings_for(fake), rp_keys, requests.Session(), clock)


def authorize(url: str) -> dict[str, str]:
    """What the browser does: follow itsme's redirect back to our callback."""
    response = requests.get(url, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return dict(parse_qsl(urlsplit(response.headers["Location"]).query))


def login(connector: ItsmeConnector, **begin):
    url, transaction = connector.begin(**begin)
    return connector.complete(authorize(url), transaction)


def failure(connector: ItsmeConnector, **begin) -> ConnectorError:
    with pytest.raises(ConnectorError) as exc:
        login(connector, **begin)
    return exc.value


# -- settings -----------------------------------------------------------------


def test_settings_defaults(fake):
    s = settings_for(fake)
    assert s.scopes == ("profile", "email", "phone", "address", "eid")
    assert s.claims == () and s.client_auth == "private_key_jwt" and s.client_secret is None
    assert s.timeout == 5 and s.jwks_max_age == 3600
    assert dict(s.levels) == {ACR_BASIC: "substantial", ACR_ADVANCED: "high"}
    assert s.keys_passphrase == ENV["ITSME_KEYS_PASSPHRASE"]
    assert ENV["ITSME_KEYS_PASSPHRASE"] not in repr(s)


@pytest.mark.parametrize("environment", ["e2e", "production"])
def test_settings_environment_presets_pick_the_discovery_url(fake, environment):
    s = settings_for(
        fake, environment=environment, discovery_url=None, redirect_uri="https://portal.example/cb"
    )
    assert s.discovery_url == DISCOVERY_URLS[environment]


@pytest.mark.parametrize(
    ("overrides", "key", "reason"),
    [
        ({"environment": "staging"}, "environment", "must be one of"),
        ({"discovery_url": None}, "discovery_url", 'required when environment = "custom"'),
        (
            {"discovery_url": "http://idp.example/v2/.well-known/openid-configuration"},
            "discovery_url",
            "https",
        ),
        ({"client_id": None}, "client_id", "is required"),
        ({"service_code": "two words"}, "service_code", "single word"),
        ({"redirect_uri": "http://portal.example/cb"}, "redirect_uri", "must use https"),
        ({"redirect_uri": "/relative"}, "redirect_uri", "absolute URL"),
        ({"scopes": ["openid", "profile"]}, "scopes[0]", "added automatically"),
        ({"scopes": ["service:OTHER"]}, "scopes[0]", "added automatically"),
        ({"claims": ["has space"]}, "claims[0]", "without spaces"),
        ({"client_auth": "client_secret_basic"}, "client_auth", "must be one of"),
        ({"client_auth": "client_secret_post"}, "client_secret", "is required"),
        ({"client_secret": "env:ITSME_SECRET"}, "client_secret", "only used with"),
        ({"client_auth": "client_secret_post", "client_secret": "literal"}, "client_secret", "env:NAME"),
        ({"keys_dir": None}, "keys_dir", "is required"),
        ({"keys_passphrase": None}, "keys_passphrase", "is required"),
        ({"keys_passphrase": "env:MISSING"}, "keys_passphrase", "not set"),
        ({"timeout": 0}, "timeout", "at least 1"),
        ({"levels": {ACR_BASIC: "medium"}}, f"levels.{ACR_BASIC}", "must be one of"),
        ({"levels": {}}, "levels", "at least one"),
        ({"jwks_max_age": 10}, "jwks_max_age", "at least 60"),
        ({"colour": "blue"}, "colour", "unknown key"),
    ],
)
def test_settings_report_errors_without_raising(fake, overrides, key, reason):
    t = table(fake, **overrides)
    ItsmeSettings.from_table(t)
    assert any(e.key == key and reason in e.reason for e in t.errors), t.errors


def test_settings_report_every_error_at_once(fake):
    t = table(fake, client_id=None, redirect_uri="ftp://x", timeout="5")
    ItsmeSettings.from_table(t)
    assert {e.key for e in t.errors} == {"client_id", "redirect_uri", "timeout"}


# -- the authentication request -------------------------------------------------


def test_begin_builds_the_authorization_request(connector, fake):
    url, tx = connector.begin()
    assert url.startswith(f"{fake.issuer}/authorization?")
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert q["response_type"] == "code"
    assert q["client_id"] == CLIENT_ID
    assert q["redirect_uri"] == CALLBACK
    assert q["scope"] == f"openid service:{SERVICE} profile email phone address eid"
    assert q["state"] == tx["state"] and q["nonce"] == tx["nonce"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(tx["code_verifier"].encode()).digest()).rstrip(b"=")
    assert q["code_challenge"] == challenge.decode() and q["code_challenge_method"] == "S256"
    assert q["acr_values"] == ACR_BASIC and q["ui_locales"] == "fr"
    assert "claims" not in q and "login_hint" not in q
    assert json.loads(json.dumps(tx)) == tx
    assert tx["created_at"] == T0 and tx["acr"] == ACR_BASIC


def test_begin_uses_fresh_state_nonce_and_verifier_each_time(connector):
    a, b = connector.begin()[1], connector.begin()[1]
    assert all(a[k] != b[k] for k in ("state", "nonce", "code_verifier"))


@pytest.mark.parametrize(
    ("level", "acr"), [("low", ACR_BASIC), ("substantial", ACR_BASIC), ("high", ACR_ADVANCED)]
)
def test_begin_asks_for_the_weakest_acr_that_reaches_the_level(connector, level, acr):
    url, tx = connector.begin(level=level)
    assert parse_qs(urlsplit(url).query)["acr_values"] == [acr] and tx["acr"] == acr


def test_begin_refuses_an_unknown_level(connector):
    with pytest.raises(ValueError):
        connector.begin(level="extreme")


@pytest.mark.parametrize(
    ("locale", "ui_locales"),
    [("nl", "nl"), ("de-BE", "de"), ("EN", "en"), ("fr_BE", "fr"), ("es", "fr"), ("", "fr")],
)
def test_begin_maps_the_locale_to_itsme_ui_locales(connector, locale, ui_locales):
    url, _ = connector.begin(locale=locale)
    assert parse_qs(urlsplit(url).query)["ui_locales"] == [ui_locales]


def test_begin_sends_configured_claims_and_login_hint(fake, rp_keys, clock):
    extra = "http://itsme.services/v2/claim/place_of_birth"
    connector = ItsmeConnector(settings_for(fake, claims=[extra]), rp_keys, clock=clock)
    url, _ = connector.begin(login_hint="+32470123456")
    q = parse_qs(urlsplit(url).query)
    assert json.loads(q["claims"][0]) == {"userinfo": {extra: None}}
    assert q["login_hint"] == ["+32470123456"]


# -- successful logins -----------------------------------------------------------


def test_login_returns_the_identity_from_the_nested_tokens(connector, fake):
    identity = login(connector)
    assert (identity.method, identity.issuer, identity.subject) == (
        "itsme",
        fake.issuer,
        "itsme-pairwise-sub-0001",
    )
    assert identity.level == "substantial" and identity.amr == AMR_BASIC
    assert identity.national_number == "85073003328" and identity.card_number == "591123456789"
    c = identity.claims
    assert (c["given_name"], c["family_name"], c["birthdate"]) == ("Marie", "Dupont", "1985-07-30")
    assert c["email"] == "marie.dupont@example.be" and c["email_verified"] is False
    assert c["phone_number"] == "+32470123456" and c["phone_number_verified"] is True
    assert c["address"]["postal_code"] == "1000"
    assert NATIONAL_NUMBER not in c
    assert identity.connector_data == {"acr": ACR_BASIC}


def test_login_at_level_high_gets_acr_advanced_and_pin_amr(connector, fake):
    identity = login(connector, level="high")
    assert identity.level == "high" and identity.amr == AMR_ADVANCED


def test_login_with_client_secret_post(fake, rp_keys, clock):
    settings = settings_for(fake, client_auth="client_secret_post", client_secret="env:ITSME_SECRET")
    assert ENV["ITSME_SECRET"] not in repr(settings)
    assert login(ItsmeConnector(settings, rp_keys, clock=clock)).subject


def test_a_wrong_client_secret_is_refused_by_itsme(fake, rp_keys, clock):
    settings = settings_for(fake, client_auth="client_secret_post", client_secret="env:ITSME_SECRET")
    settings = dataclasses.replace(settings, client_secret="wrong")
    error = failure(ItsmeConnector(settings, rp_keys, clock=clock))
    assert error.code == "upstream_error" and "invalid_client" in error.detail


@pytest.mark.parametrize(
    ("upstream", "verified"), [(True, True), (False, False), ("true", False), (None, False)]
)
def test_email_verified_is_false_unless_itsme_says_true(connector, fake, upstream, verified):
    fake.next_login(claims={**default_claims(), "email_verified": upstream})
    assert login(connector).claims["email_verified"] is verified


def test_login_without_the_eid_scope_has_no_national_number(fake, rp_keys, clock):
    connector = ItsmeConnector(settings_for(fake, scopes=["profile"]), rp_keys, clock=clock)
    identity = login(connector)
    assert identity.national_number is None and "email" not in identity.claims


def test_national_numbers_born_after_2000_are_accepted():
    base = 10203123
    assert valid_national_number(f"{base:09d}{97 - (2_000_000_000 + base) % 97:02d}")


def test_discovery_is_fetched_once_and_cached(connector, fake):
    login(connector)
    login(connector)
    assert fake.hits[DISCOVERY] == 1 and fake.hits[JWKS] == 1


def test_login_never_logs_codes_tokens_or_national_numbers(connector, fake, caplog):
    caplog.set_level(logging.DEBUG)
    url, tx = connector.begin()
    params = authorize(url)
    connector.complete(params, tx)
    with pytest.raises(ConnectorError):
        connector.complete(params, tx)  # replayed code
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("connectors.itsme"))
    assert "succeeded" in ours and "failed" in ours
    for secret in (params["code"], params["state"], tx["nonce"], tx["code_verifier"], "85073003328"):
        assert secret not in ours


# -- the callback: cancel, errors, state -----------------------------------------


def test_person_cancelling_at_itsme_is_reported_as_cancelled(connector, fake):
    fake.next_login(error="access_denied")
    assert failure(connector).code == "cancelled"


def test_other_itsme_errors_are_upstream_errors(connector, fake):
    fake.next_login(error="temporarily_unavailable", error_description="try later")
    assert failure(connector).code == "upstream_error"


def test_a_replayed_code_is_refused_by_itsme(connector):
    url, tx = connector.begin()
    params = authorize(url)
    connector.complete(params, tx)
    with pytest.raises(ConnectorError) as exc:
        connector.complete(params, tx)
    assert exc.value.code == "upstream_error" and "invalid_grant" in exc.value.detail


def _no_tx(p, tx):
    return p, None


def _other_tx(p, tx):
    return p, {**tx, "state": "another-state"}


def _no_state(p, tx):
    return {k: v for k, v in p.items() if k != "state"}, tx


def _malformed_tx(p, tx):
    return p, {"state": p["state"]}


def _wrong_iss(p, tx):
    return {**p, "iss": "https://evil.example/v2"}, tx


@pytest.mark.parametrize(
    "tamper",
    [_no_tx, _other_tx, _no_state, _malformed_tx, _wrong_iss],
    ids=["no transaction", "state mismatch", "state missing", "malformed transaction", "iss mismatch"],
)
def test_callback_with_bad_state_is_refused(connector, tamper):
    url, tx = connector.begin()
    params, transaction = tamper(authorize(url), tx)
    with pytest.raises(ConnectorError) as exc:
        connector.complete(params, transaction)
    assert exc.value.code == "invalid_state"


def test_an_expired_transaction_is_refused(connector, clock):
    url, tx = connector.begin()
    params = authorize(url)
    clock.t += 601
    with pytest.raises(ConnectorError) as exc:
        connector.complete(params, tx)
    assert exc.value.code == "invalid_state" and "expired" in exc.value.detail


def test_a_lower_acr_than_requested_is_insufficient(connector, fake):
    fake.next_login(acr=ACR_BASIC)
    error = failure(connector, level="high")
    assert error.code == "insufficient_level"


# -- token validation: one case per check -------------------------------------------

ID_TOKEN_CASES = [
    ("unencrypted", {"encrypted": False}, "not encrypted"),
    ("alg none", {"sign_alg": "none"}, "signature alg 'none'"),
    ("HS256", {"sign_alg": "HS256"}, "signature alg 'HS256'"),
    ("RS384", {"sign_alg": "RS384"}, "signature alg 'RS384'"),
    ("JWE RSA1_5", {"jwe_alg": "RSA1_5"}, "encryption alg 'RSA1_5'"),
    ("JWE A192GCM", {"jwe_enc": "A192GCM"}, "encryption enc 'A192GCM'"),
    ("unknown enc kid", {"encrypt_to_unknown_key": True}, "unknown or expired key"),
    ("unknown signing key", {"sign_with_unknown_key": True}, "signed with an unknown key"),
    ("wrong iss", {"claims": {"iss": "https://evil.example/v2"}}, "iss"),
    ("wrong aud", {"claims": {"aud": "someone-else"}}, "aud"),
    ("several aud without azp", {"claims": {"aud": [CLIENT_ID, "other"]}}, "azp"),
    ("azp not us", {"claims": {"azp": "other"}}, "azp"),
    ("expired", {"claims": {"exp": int(T0) - 61}}, "expired"),
    ("exp missing", {"claims": {"exp": DROP}}, "exp missing"),
    ("iat in the future", {"claims": {"iat": int(T0) + 61}}, "iat in the future"),
    ("sub missing", {"claims": {"sub": DROP}}, "sub missing"),
    ("wrong nonce", {"claims": {"nonce": "another-nonce"}}, "nonce mismatch"),
    ("nonce missing", {"claims": {"nonce": DROP}}, "nonce mismatch"),
    ("acr missing", {"claims": {"acr": DROP}}, "acr missing"),
    ("acr unknown", {"claims": {"acr": "urn:example:acr:weak"}}, "acr is not a configured"),
]


@pytest.mark.parametrize(
    ("form", "detail"), [c[1:] for c in ID_TOKEN_CASES], ids=[c[0] for c in ID_TOKEN_CASES]
)
def test_id_token_failing_a_check_is_refused(connector, fake, form, detail):
    fake.behaviour.id_token = TokenForm(**form)
    error = failure(connector)
    assert error.code == "invalid_token"
    assert error.detail.startswith("id_token: ") and detail in error.detail


def test_id_token_within_clock_skew_is_accepted(connector, fake):
    fake.behaviour.id_token = TokenForm(claims={"exp": int(T0) - 59, "iat": int(T0) + 59})
    assert login(connector).subject


USERINFO_CASES = [
    ("sub mismatch", {"claims": {"sub": "somebody-else"}}, "sub differs"),
    ("plain JSON", {"encrypted": False, "content_type": "application/json"}, "not encrypted"),
    ("signed only", {"encrypted": False}, "not encrypted"),
    ("alg none", {"sign_alg": "none"}, "signature alg 'none'"),
    ("unknown enc kid", {"encrypt_to_unknown_key": True}, "unknown or expired key"),
    ("wrong iss", {"claims": {"iss": "https://evil.example/v2"}}, "iss"),
    ("wrong aud", {"claims": {"aud": "someone-else"}}, "aud"),
    ("bad national number", {"claims": {NATIONAL_NUMBER: "85073003329"}}, "national number"),
    ("short national number", {"claims": {NATIONAL_NUMBER: "8507300332"}}, "national number"),
]


@pytest.mark.parametrize(
    ("form", "detail"), [c[1:] for c in USERINFO_CASES], ids=[c[0] for c in USERINFO_CASES]
)
def test_userinfo_failing_a_check_is_refused(connector, fake, form, detail):
    fake.behaviour.userinfo = TokenForm(**form)
    error = failure(connector)
    assert error.code == "invalid_token"
    assert detail in error.detail and "85073003329" not in str(error)


# -- itsme down or misbehaving ----------------------------------------------------


@pytest.mark.parametrize("endpoint", [DISCOVERY, TOKEN, USERINFO, JWKS])
@pytest.mark.parametrize("trouble", ["slow", 500, 503])
def test_itsme_slow_or_failing_is_upstream_unavailable(fake, rp_keys, clock, endpoint, trouble):
    settings = dataclasses.replace(settings_for(fake), timeout=0.3)
    connector = ItsmeConnector(settings, rp_keys, clock=clock)
    if trouble == "slow":
        fake.behaviour.slow = {endpoint}
    else:
        fake.behaviour.status = {endpoint: trouble}
    error = failure(connector)
    assert error.code == "upstream_unavailable"
    assert ("timeout" if trouble == "slow" else f"HTTP {trouble}") in error.detail


@pytest.mark.parametrize(
    "discovery",
    [
        {"issuer": "https://evil.example/v2"},
        {"token_endpoint": "http://evil.example/token"},
        {"jwks_uri": None},
    ],
    ids=["issuer not the discovery prefix", "endpoint not https", "jwks_uri missing"],
)
def test_bad_discovery_is_upstream_unavailable(connector, fake, discovery):
    fake.behaviour.discovery = discovery
    with pytest.raises(ConnectorError) as exc:
        connector.begin()
    assert exc.value.code == "upstream_unavailable"


def test_unreachable_itsme_is_upstream_unavailable(fake, rp_keys, clock):
    settings = settings_for(fake, discovery_url="http://127.0.0.1:9/v2/.well-known/openid-configuration")
    with pytest.raises(ConnectorError) as exc:
        ItsmeConnector(settings, rp_keys, clock=clock).begin()
    assert exc.value.code == "upstream_unavailable"


# -- itsme's signing keys ---------------------------------------------------------


def test_rotated_itsme_signing_key_is_fetched_on_the_unknown_kid(connector, fake):
    login(connector)
    fake.rotate_signing_key(keep_old=False)
    assert login(connector).subject
    assert fake.hits[JWKS] == 2


def test_unknown_kids_refetch_the_jwks_at_most_once_a_minute(connector, fake, clock):
    fake.behaviour.id_token = TokenForm(sign_with_unknown_key=True)
    for _ in range(3):
        assert failure(connector).code == "invalid_token"
    assert fake.hits[JWKS] == 2  # the first load, then one refetch
    clock.t += 60
    failure(connector)
    assert fake.hits[JWKS] == 3


def test_itsme_jwks_is_refreshed_after_max_age(connector, fake, clock):
    login(connector)
    clock.t += 3600
    login(connector)
    assert fake.hits[JWKS] == 2


# -- the fake itself (reused by the browser tests) -----------------------------------


def _code(connector: ItsmeConnector) -> tuple[str, dict]:
    url, tx = connector.begin()
    return authorize(url)["code"], tx


def _token_form(connector, fake, code, tx, **overrides):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": tx["code_verifier"],
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": connector.client_assertion(fake.token_endpoint),
    }
    form.update(overrides)
    return form


def _assertion(keys: RPKeys, **claims):
    base = {"iss": CLIENT_ID, "sub": CLIENT_ID, "jti": "fixed-jti", "iat": int(T0), "exp": int(T0) + 60}
    key = keys.signing_key()
    return jwt.encode({"alg": "RS256", "kid": key.kid}, {**base, **claims}, key, algorithms=["RS256"])


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("wrong verifier", "invalid_grant"),
        ("expired code", "invalid_grant"),
        ("wrong redirect_uri", "invalid_grant"),
        ("assertion for another audience", "invalid_client"),
        ("expired assertion", "invalid_client"),
        ("assertion from another client", "invalid_client"),
        ("replayed assertion jti", "invalid_client"),
        ("no client authentication", "invalid_client"),
    ],
)
def test_fake_token_endpoint_enforces_itsme_rules(connector, fake, rp_keys, clock, case, error):
    code, tx = _code(connector)
    overrides: dict = {}
    if case == "wrong verifier":
        overrides["code_verifier"] = "x" * 43
    elif case == "expired code":
        clock.t += 181
    elif case == "wrong redirect_uri":
        overrides["redirect_uri"] = CALLBACK + "/"
    elif case == "assertion for another audience":
        overrides["client_assertion"] = _assertion(rp_keys, aud=fake.issuer, jti="a1")
    elif case == "expired assertion":
        overrides["client_assertion"] = _assertion(
            rp_keys, aud=fake.token_endpoint, exp=int(T0) - 1, jti="a2"
        )
    elif case == "assertion from another client":
        overrides["client_assertion"] = _assertion(
            rp_keys, aud=fake.token_endpoint, iss="x", sub="x", jti="a3"
        )
    elif case == "replayed assertion jti":
        first = _assertion(rp_keys, aud=fake.token_endpoint, jti=f"replay-{clock.t}")
        code2, tx2 = _code(connector)
        assert requests.post(
            fake.token_endpoint,
            data=_token_form(connector, fake, code2, tx2, client_assertion=first),
            timeout=5,
        ).ok
        overrides["client_assertion"] = first
    elif case == "no client authentication":
        overrides = {"client_assertion": None, "client_assertion_type": None}
    form = {k: v for k, v in _token_form(connector, fake, code, tx, **overrides).items() if v is not None}
    response = requests.post(fake.token_endpoint, data=form, timeout=5)
    assert response.status_code in (400, 401) and response.json()["error"] == error


@pytest.mark.parametrize(
    ("param", "value", "outcome"),
    [
        ("client_id", "someone-else", 400),
        ("redirect_uri", CALLBACK.upper(), 400),
        ("scope", "openid profile", "invalid_scope"),
        ("code_challenge_method", "plain", "invalid_request"),
    ],
)
def test_fake_authorization_endpoint_checks_the_request(connector, param, value, outcome):
    url, _ = connector.begin()
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query[param] = value
    response = requests.get(parts._replace(query="").geturl(), params=query, allow_redirects=False, timeout=5)
    if isinstance(outcome, int):
        assert response.status_code == outcome
    else:
        assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == [outcome]


def test_a_callback_without_iss_is_refused_when_itsme_announces_the_parameter(connector, fake):
    fake.behaviour.discovery = {"authorization_response_iss_parameter_supported": True}
    url, tx = connector.begin()
    params = authorize(url)
    params.pop("iss", None)
    with pytest.raises(ConnectorError) as exc:
        connector.complete(params, tx)
    assert exc.value.code == "invalid_state" and "RFC 9207" in exc.value.detail
