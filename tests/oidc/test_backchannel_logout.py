"""Back-Channel Logout 1.0: a signed logout token POSTed to every RP of the ended session."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from tests.conftest import base_config, free_port
from tests.support.oidc import (
    BACKCHANNEL_EVENT,
    app_tokens,
    decode,
    inject_sso,
    logout_confirmed,
    portal_tokens,
    unverified,
)


class Receiver:
    """A relying party's back-channel logout endpoint: records each POST, answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict] = []
        self.status = status
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                receiver.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "form": {k: v[0] for k, v in parse_qs(body).items()},
                        "cache": self.headers.get("Cache-Control"),
                    }
                )
                self.send_response(receiver.status)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def tokens_for(self, path: str) -> list[str]:
        return [r["form"]["logout_token"] for r in self.requests if r["path"] == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def provider_with_backchannel(make_app, tmp_path, receiver, **portal_extra):
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"]
    clients[0] = {**clients[0], "backchannel_logout_uri": receiver.url("/portal/bcl"), **portal_extra}
    clients[1] = {**clients[1], "backchannel_logout_uri": receiver.url("/app/bcl")}
    return make_app({"clients": clients})


@pytest.fixture
def bcl_app(make_app, make_user, tmp_path, receiver):
    make_user()
    return provider_with_backchannel(make_app, tmp_path, receiver)


def login_both(app, sub=None):
    from idp.core.storage import Account, db

    client = app.test_client()
    with app.app_context():
        sub = sub or db.session.query(Account).filter_by(username="alice").one().sub
    inject_sso(app, client, sub)
    return client, portal_tokens(client), app_tokens(client)


def test_discovery_announces_back_channel_logout_with_sessions(client):
    doc = client.get("/.well-known/openid-configuration").json
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True


def test_logout_posts_a_valid_logout_token_to_every_rp_of_the_session(bcl_app, receiver):
    client, portal, app = login_both(bcl_app)
    assert logout_confirmed(client).status_code == 200
    for path, tokens, client_id in (("/portal/bcl", portal, "portal"), ("/app/bcl", app, "app")):
        received = receiver.tokens_for(path)
        assert len(received) == 1, receiver.requests
        header, claims = decode(client, received[0])
        _, id_claims = decode(client, tokens["id_token"])
        assert header["typ"] == "logout+jwt" and header["kid"]
        assert claims["iss"] == "http://localhost"
        assert claims["aud"] == client_id
        assert isinstance(claims["iat"], int) and claims["jti"]
        assert claims["events"] == {BACKCHANNEL_EVENT: {}}
        assert claims["sub"] == id_claims["sub"]
        assert claims["sid"] == id_claims["sid"]
        assert "nonce" not in claims
    for request in receiver.requests:
        assert request["content_type"].startswith("application/x-www-form-urlencoded")
    jtis = {
        unverified(t)[1]["jti"] for t in receiver.tokens_for("/portal/bcl") + receiver.tokens_for("/app/bcl")
    }
    assert len(jtis) == 2


def test_logout_token_is_not_usable_as_an_id_token_hint_or_access_token(bcl_app, receiver):
    client, _portal, _app = login_both(bcl_app)
    logout_confirmed(client)
    token = receiver.tokens_for("/portal/bcl")[0]
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + token}).status_code == 401
    client2, _, _ = login_both(bcl_app)
    resp = client2.get("/logout", query_string={"id_token_hint": token})
    assert resp.status_code == 400


def test_only_rps_that_took_part_in_the_session_are_told(bcl_app, receiver):
    client = bcl_app.test_client()
    from idp.core.storage import Account, db

    with bcl_app.app_context():
        sub = db.session.query(Account).filter_by(username="alice").one().sub
    inject_sso(bcl_app, client, sub)
    portal_tokens(client)
    logout_confirmed(client)
    assert len(receiver.tokens_for("/portal/bcl")) == 1
    assert receiver.tokens_for("/app/bcl") == []


def test_rp_initiated_logout_with_redirect_also_notifies_the_others(bcl_app, receiver):
    client, portal, _app = login_both(bcl_app)
    resp = client.get(
        "/logout",
        query_string={
            "id_token_hint": portal["id_token"],
            "post_logout_redirect_uri": "https://portal.example.com/logged-out",
        },
    )
    assert resp.location == "https://portal.example.com/logged-out"
    assert len(receiver.tokens_for("/app/bcl")) == 1
    assert len(receiver.tokens_for("/portal/bcl")) == 1


def test_a_failing_rp_does_not_stop_the_logout(make_app, make_user, tmp_path):
    from idp.core.storage import AuditEvent, db

    failing = Receiver(status=500)
    try:
        make_user()
        app = provider_with_backchannel(make_app, tmp_path, failing)
        client, _, _ = login_both(app)
        resp = logout_confirmed(client)
        assert resp.status_code == 200
        assert len(failing.requests) == 2
        with app.app_context():
            outcomes = [e.outcome for e in db.session.query(AuditEvent).filter_by(event="backchannel_logout")]
        assert outcomes == ["failure", "failure"]
    finally:
        failing.close()


def test_an_unreachable_rp_does_not_stop_the_logout(make_app, make_user, tmp_path):
    make_user()
    clients = base_config("http://localhost", "sqlite://", tmp_path)["clients"]
    clients[0] = {**clients[0], "backchannel_logout_uri": f"http://127.0.0.1:{free_port()}/gone"}
    app = make_app({"clients": clients})
    client, _, _ = login_both(app)
    assert logout_confirmed(client).status_code == 200


def test_ending_a_session_from_the_account_page_notifies_the_rps(bcl_app, receiver):
    from tests.conftest import csrf_from

    client, portal, _ = login_both(bcl_app)
    sid = unverified(portal["id_token"])[1]["sid"]
    page = client.get("/account/")
    assert page.status_code == 200
    resp = client.post(
        f"/account/sessions/{sid}/end", data={"csrf_token": csrf_from(page.get_data(as_text=True))}
    )
    assert resp.status_code == 303
    assert len(receiver.tokens_for("/portal/bcl")) == 1
    assert unverified(receiver.tokens_for("/portal/bcl")[0])[1]["sid"] == sid


def test_a_new_login_by_another_person_logs_the_previous_one_out_everywhere(bcl_app, receiver, make_user):
    from tests.conftest import authorize_params
    from tests.support.oidc import login_pages

    client, portal, _ = login_both(bcl_app)
    make_user("bob")
    params, _ = authorize_params(prompt="login")
    resp = client.get("/authorize", query_string=params)
    login_pages(client, resp.location, username="bob")
    tokens = receiver.tokens_for("/portal/bcl")
    assert len(tokens) == 1
    assert unverified(tokens[0])[1]["sub"] == unverified(portal["id_token"])[1]["sub"]
