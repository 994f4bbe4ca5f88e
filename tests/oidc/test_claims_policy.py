"""The claims parameter selects among what the scopes grant; it never widens them."""

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import PORTAL_SECRET, authorize_params, exchange, get_code, make_user_in

NARROW = {
    "client_id": "narrow",
    "type": "confidential",
    "client_secret": "env:IDP_TEST_PORTAL_SECRET",
    "redirect_uris": ["https://narrow.example.com/cb"],
    "scopes": ["openid"],
    "first_party": True,
}


@pytest.fixture
def narrow_app(make_app):
    return make_app({"clients": [NARROW]})


def test_claims_parameter_cannot_reach_beyond_the_allowed_scopes(narrow_app):
    make_user_in(narrow_app)
    client = narrow_app.test_client()
    wanted = {"email": None, "phone_number": None, "given_name": None}
    params, verifier = authorize_params(
        client_id="narrow",
        redirect_uri="https://narrow.example.com/cb",
        scope="openid email phone profile",
        claims=json.dumps({"id_token": wanted, "userinfo": wanted}),
    )
    result = get_code(client, params)
    resp = exchange(
        client,
        result["code"],
        verifier,
        client_id="narrow",
        redirect_uri="https://narrow.example.com/cb",
        auth=("narrow", PORTAL_SECRET),
    )
    assert resp.status_code == 200, resp.json
    keys = KeySet.import_key_set(json.loads(client.get("/jwks.json").data))
    id_claims = jwt.decode(resp.json["id_token"], keys).claims
    assert not set(wanted) & set(id_claims)
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + resp.json["access_token"]}).json
    assert set(info) == {"sub"}


def test_claims_parameter_places_granted_claims_in_the_id_token(client, user):
    params, verifier = authorize_params(
        scope="openid email", claims=json.dumps({"id_token": {"email": {"essential": True}}})
    )
    result = get_code(client, params)
    resp = exchange(client, result["code"], verifier)
    keys = KeySet.import_key_set(json.loads(client.get("/jwks.json").data))
    assert jwt.decode(resp.json["id_token"], keys).claims["email"] == "alice@example.com"


@pytest.mark.parametrize(
    "extra",
    [{"max_age": "²"}, {"max_age": "1e3"}, {"claims": json.dumps({"id_token": {"acr": {"values": 5}}})}],
    ids=["superscript-two", "exponent", "acr-values-not-a-list"],
)
def test_odd_authorization_parameters_never_give_a_500(client, user, extra):
    params, _ = authorize_params(**extra)
    get_code(client, authorize_params()[0])  # logged in: the request reaches every check
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code in (302, 400)


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\\evil.example", "//evil.example", "/\n/x"])
def test_language_picker_never_redirects_off_site(client, target):
    from tests.conftest import csrf_from

    page = client.get("/login/-")
    resp = client.post(
        "/lang/nl", data={"csrf_token": csrf_from(page.get_data(as_text=True)), "next": target}
    )
    assert resp.status_code == 303
    assert resp.location == "/"
