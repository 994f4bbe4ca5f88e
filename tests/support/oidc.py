"""Helpers for the OpenID Connect conformance tests: full flows, token checks, injected sessions.

The flows go through the real endpoints (authorization, hosted login page,
token); :func:`inject_sso` is the one shortcut: it writes an SSO session row
and a browser session directly, so tests can choose the level, the methods
and the ``auth_time`` of a login without a login method that reaches them
and without waiting for time to pass.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import PASSWORD, PORTAL_SECRET, authorize_params, base_config, exchange, query_of

APP_REDIRECT = "be.example.app:/callback"
PARTNER_REDIRECT = "https://partner.example.net/cb"
PORTAL_REDIRECT = "https://portal.example.com/callback"
BACKCHANNEL_EVENT = "http://schemas.openid.net/event/backchannel-logout"


def basic(client_id: str = "portal", secret: str = PORTAL_SECRET) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def jwks_of(client) -> KeySet:
    resp = client.get("/jwks.json")
    assert resp.status_code == 200
    return KeySet.import_key_set(resp.get_json(force=True))


def decode(client, token: str, typ: str | None = None) -> tuple[dict, dict]:
    """Verify a token of the provider against its published JWKS; (header, claims)."""
    result = jwt.decode(token, jwks_of(client), algorithms=["RS256", "PS256", "ES256"])
    if typ is not None:
        assert result.header.get("typ") == typ, result.header
    return dict(result.header), dict(result.claims)


def unverified(token: str) -> tuple[dict, dict]:
    def part(i: int) -> dict:
        raw = token.split(".")[i]
        return json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))

    return part(0), part(1)


def last_sms_code(app, phone: str | None = None) -> str:
    """The newest one-time code sent through the development outbox."""
    import re

    from tests.support.sms_login import deliver

    deliver(app)
    path = app.extensions["idp.settings"].sms.outbox
    for line in reversed(path.read_text().splitlines()):
        record = json.loads(line)
        text = json.dumps(record)
        if phone and phone not in text:
            continue
        match = re.search(r"\b(\d{6,8})\b", record.get("text") or record.get("body") or text)
        if match:
            return match.group(1)
    raise AssertionError("no code in the outbox")


class _Forms(HTMLParser):
    """The POST forms of a page: action, inputs and the first submit button."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form" and a.get("method", "get").lower() == "post":
            self._current = {"action": a.get("action", ""), "fields": {}, "checkboxes": {}, "button": None}
            self.forms.append(self._current)
        elif self._current is not None and tag in ("input", "button") and a.get("name"):
            kind = a.get("type", "text" if tag == "input" else "submit").lower()
            if kind == "checkbox":
                self._current["checkboxes"][a["name"]] = a.get("value") or "y"
            elif kind == "submit":
                if self._current["button"] is None:
                    self._current["button"] = (a["name"], a.get("value", ""))
            else:
                self._current["fields"][a["name"]] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._current = None


def fill_form(client, path: str, page, **values):
    """Submit the page's own form (not the language picker) as a person would: hidden fields
    kept, boxes ticked, ``values`` typed in, the first button pressed."""
    parser = _Forms()
    parser.feed(page.get_data(as_text=True))
    forms = [f for f in parser.forms if not f["action"].startswith("/lang/") and f["action"] in ("", path)]
    assert forms, f"no form on {path}"
    form = forms[0]
    data = {**form["fields"], **form["checkboxes"], **values}
    if form["button"]:
        data.setdefault(*form["button"])
    return client.post(path, data=data)


def login_pages(client, location: str, username: str = "alice", password: str = PASSWORD):
    """Log in through the hosted pages from a /login/<tx> redirect: the password, then every
    further step the login asks for (SMS code, required actions such as accepting the terms).
    Returns the response that leaves the login pages."""
    tx_path = urlsplit(location).path
    page = client.get(tx_path + "/password")
    assert page.status_code == 200, page.get_data(as_text=True)
    resp = fill_form(client, tx_path + "/password", page, username=username, password=password)
    for _ in range(12):
        if resp.status_code not in (302, 303) or not urlsplit(resp.location).path.startswith(tx_path + "/"):
            break
        step = urlsplit(resp.location).path
        page = client.get(step)
        if page.status_code in (302, 303):
            resp = page
            continue
        assert page.status_code == 200, page.get_data(as_text=True)
        values = {"code": last_sms_code(client.application)} if step.endswith("/code") else {}
        resp = fill_form(client, step, page, **values)
    return resp


def get_code(client, params: dict, username: str = "alice", password: str = PASSWORD) -> dict:
    """The authorization request, logging in through the pages when asked; the redirect's query."""
    resp = client.get("/authorize", query_string=params)
    if resp.status_code == 302 and "/login/" in resp.location:
        resp = login_pages(client, resp.location, username, password)
        assert resp.status_code in (302, 303), resp.get_data(as_text=True)
        resp = client.get(resp.location)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return query_of(resp.location)


def portal_tokens(client, **extra) -> dict:
    """Log in (if needed) and run the portal's code flow; the token response body."""
    params, verifier = authorize_params(**extra)
    result = get_code(client, params)
    assert "code" in result, result
    resp = exchange(client, result["code"], verifier)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    body["_params"] = params
    return body


def app_tokens(client, **extra) -> dict:
    """The public native app's code flow (no client authentication)."""
    params, verifier = authorize_params(client_id="app", redirect_uri=APP_REDIRECT, **extra)
    result = get_code(client, params)
    assert "code" in result, result
    resp = exchange(client, result["code"], verifier, client_id="app", redirect_uri=APP_REDIRECT, auth=None)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    body["_params"] = params
    return body


def code_for(client, client_id: str = "portal", redirect_uri: str = PORTAL_REDIRECT, **extra):
    """A fresh code (logging in if needed): (code, verifier, params)."""
    params, verifier = authorize_params(client_id=client_id, redirect_uri=redirect_uri, **extra)
    result = get_code(client, params)
    assert "code" in result, result
    return result["code"], verifier, params


def refresh(client, refresh_token: str, client_id: str = "app", auth: dict | None = None):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if auth is None:
        data["client_id"] = client_id
    return client.post("/token", data=data, headers=auth or {})


def userinfo(client, access_token: str, method: str = "GET"):
    headers = {"Authorization": "Bearer " + access_token}
    if method == "POST":
        return client.post("/userinfo", headers=headers)
    return client.get("/userinfo", headers=headers)


def inject_sso(
    app,
    client,
    sub: str,
    level: str = "low",
    methods=("password",),
    amr=("pwd",),
    auth_time: int | None = None,
) -> str:
    """Give the test client's browser a live SSO session for ``sub``; returns the sid."""
    from idp.core.sessions import COOKIE_DEV
    from idp.core.storage import Account, SsoSession, db

    now = int(time.time())
    sid = secrets.token_urlsafe(24)
    with app.app_context():
        account = db.session.query(Account).filter_by(sub=sub).one()
        db.session.add(
            SsoSession(
                id=sid,
                account_id=account.id,
                auth_time=auth_time or now,
                level=level,
                methods=list(methods),
                amr=list(amr),
                created_at=now,
                last_seen_at=now,
                expires_at=now + 3600,
            )
        )
        db.session.commit()
    browser = secrets.token_urlsafe(32)
    app.extensions["idp.kv"].set(f"session:{browser}", json.dumps({"sid": sid, "_t": now}).encode(), 3600)
    client.set_cookie(COOKIE_DEV, browser, domain="localhost")
    return sid


def set_auth_time(app, sid: str, auth_time: int) -> None:
    """Move a login into the past (max_age tests): the clock is the database row's."""
    from idp.core.storage import SsoSession, db

    with app.app_context():
        row = db.session.get(SsoSession, sid)
        row.auth_time = auth_time
        db.session.commit()


def current_sid(app, client) -> str | None:
    from idp.core.sessions import COOKIE_DEV

    cookie = client.get_cookie(COOKIE_DEV, domain="localhost")
    if cookie is None:
        return None
    raw = app.extensions["idp.kv"].get(f"session:{cookie.value}")
    return json.loads(raw).get("sid") if raw else None


def path_of(location: str) -> str:
    return urlsplit(location).path


def confirm_logout(client, page, decision: str = "logout"):
    """Answer the logout confirmation page ("Log out of …?") as the person would."""
    assert page.status_code == 200 and "Log out of" in page.get_data(as_text=True), page.status_code
    return fill_form(client, "/logout/confirm", page, decision=decision)


def logout_confirmed(client, **query):
    """RP-initiated logout without a hint for this session: asked, and confirmed."""
    return confirm_logout(client, client.get("/logout", query_string=query))


def clients_with(portal: dict | None = None, app: dict | None = None, tmp_path=None) -> dict:
    """The test configuration's clients, the portal and the app changed by ``portal`` / ``app``."""
    clients = [dict(c) for c in base_config("http://localhost", "sqlite://", tmp_path)["clients"]]
    for c in clients:
        if c["client_id"] == "portal":
            c.update(portal or {})
        if c["client_id"] == "app":
            c.update(app or {})
    return {"clients": clients}
