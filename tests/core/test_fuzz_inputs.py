"""Bad input never gets a 5xx and never changes anything (issue 12 part 1).

Hypothesis sends every endpoint the discovery document names (GET and POST)
and every hosted form (with its own CSRF token, so the view itself runs)
values drawn per field from: NUL and other control characters, invalid UTF-8,
encoded surrogates, very long values, confusable and bidi/zero-width names,
deeply nested and wrongly shaped JSON, quotes, duplicated parameters, a
mangled ``Authorization`` header and the wrong content type. After each
target's batch, every table (except the audit trail and the failed-attempt
counters, which a refused login is meant to bump) and the SMS/mail outbox are
exactly as before. Bounded: ``EXAMPLES`` requests per target, a few thousand
in all on both databases.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote_from_bytes, urlsplit

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import PORTAL_SECRET, authorize_params, csrf_from
from tests.support.oidc import _Forms, basic
from tests.support.sms_login import login_at_provider

EXAMPLES = 60
UNCHANGED_EXCEPT = {"audit_events", "failure_counters"}

NASTY = [
    b"\x00",
    b"alice\x00",
    b"\xff\xfe",
    b"\xc3",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\x1b[31m",
    b"\x7f",
    "\u0085".encode(),
    b"A" * 20000,
    "ａｌｉｃｅ".encode(),  # fullwidth
    "аlice".encode(),  # Cyrillic a
    "ali\u200bce".encode(),
    "\u202eecila".encode(),
    b'co"de',
    "cödé".encode(),
    b"\\",
    b"[" * 3000,
    b'{"id_token":' * 200,
    b"[1,2]",
    b'{"id_token": [1]}',
    b"%00",
    b"{{7*7}}",
    b"<script>alert(1)</script>",
    b"' OR '1'='1",
    b"",
    b"-1",
    b"99999999999999999999999999",
]

values = st.one_of(
    st.sampled_from(NASTY),
    st.binary(max_size=24),
    st.text(max_size=24).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded",
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
        None,
    ]
)
auth_headers = st.one_of(
    st.none(),
    st.binary(max_size=16).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    st.sampled_from(
        ["Basic é", "Basic !!!", "Bearer \x7f", "Basic " + base64.b64encode(b"\xff:\xfe").decode()]
    ),
)


def encode(pairs: list[tuple[bytes, bytes]], raw: bool) -> bytes:
    if raw:  # bytes as they are, not percent-encoded
        return b"&".join(k + b"=" + v.replace(b"&", b"") for k, v in pairs)
    return b"&".join(quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in pairs)


@st.composite
def mutations(draw, fields: dict[str, str]):
    """The form's own fields, some replaced by nasty values, maybe one duplicated or added."""
    pairs = [(k.encode(), v.encode()) for k, v in fields.items()]
    names = [k for k, _ in pairs if k != b"csrf_token"] or [b"x"]
    for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
        pairs = [(k, draw(values) if k == name else v) for k, v in pairs]
        if not any(k == name for k, _ in pairs):
            pairs.append((name, draw(values)))
    if draw(st.booleans()):
        pairs.append(draw(st.sampled_from(pairs)) if pairs else (b"x", b"y"))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(values) or b"k", draw(values)))
    return pairs, draw(st.booleans()) and draw(st.booleans())


def snapshot(app) -> str:
    """A digest of every table that bad input must leave alone, and of the outbox."""
    from idp.core.storage import db

    h = hashlib.sha256()
    with app.app_context():
        meta = sa.MetaData()
        meta.reflect(bind=db.engine)
        with db.engine.connect() as conn:
            for name in sorted(meta.tables):
                if name in UNCHANGED_EXCEPT:
                    continue
                table = meta.tables[name]
                rows = conn.execute(sa.select(table)).all()
                h.update(name.encode() + repr(sorted(map(repr, rows))).encode())
    outbox = app.extensions["idp.settings"].sms.outbox
    h.update(outbox.read_bytes() if outbox.exists() else b"")
    return h.hexdigest()


def fuzz(client, method: str, path: str, fields: dict[str, str], headers: dict | None = None):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutation=mutations(fields), content_type=content_types, auth=auth_headers)
    def run(mutation, content_type, auth):
        pairs, raw = mutation
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = auth
        if method == "GET":
            resp = client.get(path, query_string=encode(pairs, raw).decode("latin-1"), headers=sent)
        else:
            body = encode(pairs, raw)
            if content_type == "application/json":
                body = b'{"password": ' + (pairs[0][1] if pairs else b"[") + b"}"
            resp = client.open(
                path,
                method="POST",
                data=body,
                headers=sent,
                content_type=content_type,
            )
        assert resp.status_code < 500, (method, path, pairs, content_type, auth, resp.get_data()[:500])

    run()


def forms_on(client, path: str) -> list[tuple[str, dict[str, str]]]:
    page = client.get(path)
    assert page.status_code == 200, (path, page.status_code)
    parser = _Forms()
    parser.feed(page.get_data(as_text=True))
    out = []
    for form in parser.forms:
        action = urlsplit(form["action"] or path).path
        if action.startswith("/lang/"):
            continue
        fields = {**form["fields"], **form["checkboxes"]}
        if form["button"]:
            fields.setdefault(*form["button"])
        out.append((action, fields))
    assert out, f"no form on {path}"
    return out


@pytest.fixture
def fuzz_app(make_app):
    return make_app(
        {
            "methods": {"contract": {"enabled": True}},
            "registration": {"letter": {"enabled": True}, "recovery": {"response_time_floor_ms": 0}},
        }
    )


def test_every_discovery_endpoint_answers_bad_input_without_5xx_or_change(fuzz_app, make_user):
    make_user()
    client = fuzz_app.test_client()
    doc = client.get("/.well-known/openid-configuration").get_json()
    endpoints = sorted(
        {urlsplit(v).path for k, v in doc.items() if k.endswith("_endpoint") or k == "jwks_uri"}
    )
    assert {"/authorize", "/token", "/revoke", "/introspect", "/userinfo", "/logout"} <= set(endpoints)
    params, verifier = authorize_params()
    before = snapshot(fuzz_app)
    for path in endpoints + ["/.well-known/openid-configuration"]:
        base = {
            "/authorize": params,
            "/token": {"grant_type": "refresh_token", "refresh_token": "x" * 43, "code_verifier": verifier},
            "/revoke": {"token": "x" * 43, "token_type_hint": "refresh_token"},
            "/introspect": {"token": "x" * 43},
            "/userinfo": {"access_token": "x.y.z"},
            "/logout": {
                "id_token_hint": "x.y.z",
                "post_logout_redirect_uri": "https://portal.example.com/logged-out",
            },
        }.get(path, {"x": "y"})
        headers = basic("portal", PORTAL_SECRET) if path in ("/token", "/revoke", "/introspect") else None
        fuzz(client, "GET", path, base, headers)
        fuzz(client, "POST", path, base, headers)
    assert snapshot(fuzz_app) == before


def test_every_hosted_form_answers_bad_input_without_5xx_or_change(fuzz_app, make_user):
    make_user()
    anonymous = fuzz_app.test_client()
    resp = anonymous.get("/authorize", query_string=authorize_params()[0])
    tx_path = urlsplit(resp.location).path
    pages = [
        tx_path + "/password",
        tx_path + "/contract",
        "/register/",
        "/recover/password",
        "/recover/username",
        "/activate",
    ]
    signed_in = fuzz_app.test_client()
    login_at_provider(signed_in, fuzz_app)
    # The account home page has the "end this session" buttons: posting them is a real change.
    account_pages = ["/account/password", "/account/username", "/account/phone", "/account/email"]
    before = snapshot(fuzz_app)
    for client, paths in ((anonymous, pages), (signed_in, account_pages)):
        for path in paths:
            for action, fields in forms_on(client, path):
                fuzz(client, "POST", action, fields)
    token = csrf_from(anonymous.get("/register/").get_data(as_text=True))
    fuzz(anonymous, "POST", "/register/password-policy", {"password": "x"}, {"X-CSRFToken": token})
    assert snapshot(fuzz_app) == before


@pytest.mark.parametrize(
    "path",
    ["/token", "/revoke", "/introspect"],
)
@pytest.mark.parametrize(
    "header",
    [
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic \xe9t\xe9",
        "Basic ***",
    ],
)
def test_undecodable_client_credentials_get_invalid_client(client, path, header):
    resp = client.post(
        path,
        data={"token": "x", "grant_type": "refresh_token", "refresh_token": "x"},
        headers={"Authorization": header},
    )
    assert resp.status_code == 401
    assert resp.get_json()["error"] == "invalid_client"
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


@pytest.mark.parametrize("response_type", ['co"de', "cödé", "code\\", "x" * 500])
def test_an_unprintable_response_type_gets_an_error_redirect(client, response_type):
    params, _ = authorize_params(response_type=response_type)
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302
    assert resp.location.startswith("https://portal.example.com/callback?")
    assert "error=unsupported_response_type" in resp.location
    assert len(resp.location) < 1000  # the bad value is echoed only in part


@pytest.mark.parametrize("claims", ["[" * 3000, '{"id_token":' * 1000 + "1" + "}" * 1000, "[1,2]"])
def test_deep_or_misshapen_claims_get_invalid_request(client, claims):
    params, _ = authorize_params(claims=claims)
    resp = client.get("/authorize", query_string=params)
    assert resp.status_code == 302 and "error=invalid_request" in resp.location


@pytest.mark.parametrize("body", [b"[" * 100000, b"[1,2]", b'"x"', b"\xff"])
def test_password_policy_check_refuses_bad_json_calmly(client, body):
    token = csrf_from(client.get("/register/").get_data(as_text=True))
    resp = client.post(
        "/register/password-policy",
        data=body,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 200 and resp.get_json()["ok"] is False


def test_a_nul_byte_in_a_login_field_gets_a_400_page(client, user):
    resp = client.get("/authorize", query_string=authorize_params()[0])
    path = urlsplit(resp.location).path + "/password"
    token = csrf_from(client.get(path).get_data(as_text=True))
    resp = client.post(path, data={"csrf_token": token, "username": "alice\x00", "password": "x"})
    assert resp.status_code == 400
    assert "characters" in resp.get_data(as_text=True)
