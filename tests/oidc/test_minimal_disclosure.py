"""Minimal disclosure: claims per scope as configuration, per-client claim limits, and
pairwise subjects (OpenID Connect Core 5.4, 8.1)."""

from __future__ import annotations

import pytest

from tests.conftest import PORTAL_SECRET, base_config, exchange
from tests.oidc.test_backchannel_logout import Receiver
from tests.support.oidc import (
    app_tokens,
    code_for,
    decode,
    inject_sso,
    logout_confirmed,
    portal_tokens,
    userinfo,
)

SECRET = PORTAL_SECRET


def rp(client_id: str, redirect: str, **extra) -> dict:
    return {
        "client_id": client_id,
        "type": "confidential",
        "client_secret": "env:IDP_TEST_PORTAL_SECRET",
        "redirect_uris": [redirect],
        "first_party": True,
        **extra,
    }


def provider(make_app, tmp_path, *extra_clients, **tables):
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"] + list(extra_clients)
    return make_app({"clients": clients, **tables})


def tokens_of(client, client_id: str, redirect: str, scope="openid profile email") -> dict:
    code, verifier, _ = code_for(client, client_id=client_id, redirect_uri=redirect, scope=scope)
    resp = exchange(
        client, code, verifier, client_id=client_id, redirect_uri=redirect, auth=(client_id, SECRET)
    )
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def sub_of(client, tokens) -> str:
    return decode(client, tokens["id_token"])[1]["sub"]


@pytest.fixture
def shop_and_bank(make_app, make_user, tmp_path):
    app = provider(
        make_app,
        tmp_path,
        rp("shop", "https://shop.example.net/cb", subject_type="pairwise"),
        rp("bank", "https://bank.example.org/cb", subject_type="pairwise"),
        rp(
            "bank-app",
            "https://m.bank.example.org/cb",
            subject_type="pairwise",
            sector_identifier="bank.example.org",
        ),
    )
    sub = make_user()
    client = app.test_client()
    inject_sso(app, client, sub)
    return app, client, sub


def test_two_pairwise_clients_receive_different_subs_and_the_portal_and_app_the_same(shop_and_bank):
    app, client, sub = shop_and_bank
    shop = sub_of(client, tokens_of(client, "shop", "https://shop.example.net/cb"))
    bank = sub_of(client, tokens_of(client, "bank", "https://bank.example.org/cb"))
    assert len({shop, bank, sub}) == 3
    assert sub_of(client, portal_tokens(client)) == sub_of(client, app_tokens(client)) == sub


def test_clients_of_one_sector_share_the_pairwise_sub(shop_and_bank):
    _app, client, _sub = shop_and_bank
    bank = sub_of(client, tokens_of(client, "bank", "https://bank.example.org/cb"))
    bank_app = sub_of(client, tokens_of(client, "bank-app", "https://m.bank.example.org/cb"))
    assert bank == bank_app


def test_pairwise_sub_is_the_same_in_every_token_and_endpoint(shop_and_bank):
    _app, client, _sub = shop_and_bank
    tokens = tokens_of(client, "shop", "https://shop.example.net/cb")
    sub = sub_of(client, tokens)
    assert decode(client, tokens["access_token"], typ="at+jwt")[1]["sub"] == sub
    assert userinfo(client, tokens["access_token"]).json["sub"] == sub
    intro = client.post("/introspect", data={"token": tokens["access_token"]}, auth=("shop", SECRET)).json
    assert intro["active"] and intro["sub"] == sub
    again = tokens_of(client, "shop", "https://shop.example.net/cb")
    assert sub_of(client, again) == sub  # stable


def test_id_token_hint_of_a_pairwise_client_names_the_person(shop_and_bank):
    _app, client, _sub = shop_and_bank
    tokens = tokens_of(client, "shop", "https://shop.example.net/cb")
    code, _verifier, _ = code_for(
        client,
        client_id="shop",
        redirect_uri="https://shop.example.net/cb",
        prompt="none",
        id_token_hint=tokens["id_token"],
    )
    assert code
    resp = client.get("/logout", query_string={"id_token_hint": tokens["id_token"]})
    assert resp.status_code in (200, 303), resp.get_data(as_text=True)
    assert "another account" not in resp.get_data(as_text=True)


def test_logout_token_carries_the_clients_own_sub(make_app, make_user, tmp_path):
    receiver = Receiver()
    try:
        app = provider(
            make_app,
            tmp_path,
            rp(
                "shop",
                "https://shop.example.net/cb",
                subject_type="pairwise",
                backchannel_logout_uri=receiver.url("/shop/bcl"),
            ),
        )
        client = app.test_client()
        inject_sso(app, client, make_user())
        sub = sub_of(client, tokens_of(client, "shop", "https://shop.example.net/cb"))
        logout_confirmed(client)
        (token,) = receiver.tokens_for("/shop/bcl")
        assert decode(client, token)[1]["sub"] == sub
    finally:
        receiver.close()


def test_a_scope_can_release_fewer_claims_than_the_standard(make_app, make_user, tmp_path):
    app = provider(make_app, tmp_path, claims={"scopes": {"profile": ["name", "given_name", "family_name"]}})
    client = app.test_client()
    inject_sso(app, client, make_user())
    from idp.core.storage import Account, db

    with app.app_context():
        db.session.query(Account).update({"birthdate": "1985-07-30", "locale": "fr"})
        db.session.commit()
    tokens = portal_tokens(client, scope="openid profile")
    info = userinfo(client, tokens["access_token"]).json
    assert info["given_name"] == "Alice" and "birthdate" not in info and "locale" not in info
    assert "birthdate" not in client.get("/.well-known/openid-configuration").json["claims_supported"]


def test_a_client_limited_to_some_claims_gets_no_more(make_app, make_user, tmp_path):
    app = provider(make_app, tmp_path, rp("shop", "https://shop.example.net/cb", claims=["email"]))
    client = app.test_client()
    inject_sso(app, client, make_user())
    tokens = tokens_of(client, "shop", "https://shop.example.net/cb", scope="openid profile email phone")
    info = userinfo(client, tokens["access_token"]).json
    assert set(info) == {"sub", "email"}


@pytest.mark.parametrize(
    ("clients", "tables", "message"),
    [
        (
            [
                rp(
                    "x",
                    "be.example.x:/cb",
                    subject_type="pairwise",
                    type="public",
                    token_endpoint_auth_method="none",
                    client_secret=None,
                )
            ],
            {},
            "sector_identifier",
        ),
        ([rp("x", "https://a.example/cb", claims=["shoe_size"])], {}, "unknown claim 'shoe_size'"),
        ([rp("x", "https://a.example/cb", subject_type="secret")], {}, "subject_type"),
        ([], {"claims": {"scopes": {"profile": ["email"]}}}, "not a claim of the profile scope"),
        ([], {"claims": {"scopes": {"shoes": ["x"]}}}, "unknown scope"),
    ],
)
def test_bad_privacy_settings_are_reported(make_app, tmp_path, clients, tables, message):
    from connectors.config import ConfigErrors

    for c in clients:
        for k in [k for k, v in c.items() if v is None]:
            c.pop(k)
    with pytest.raises(ConfigErrors) as err:
        provider(make_app, tmp_path, *clients, **tables)
    assert message in str(err.value)
