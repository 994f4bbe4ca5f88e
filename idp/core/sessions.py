"""Browser sessions and the single sign-on session.

The browser session is server-side: the cookie holds only a random id, the
data lives in the shared store (memory or Redis) with the idle timeout as its
lifetime. :func:`rotate` gives the browser a new id at every login step
(session fixation). The SSO session (``sid``) is a database row shared by
every relying party; it records which of them took part, so that logout
reaches all of them (OpenID Connect Back-Channel Logout 1.0).
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from blinker import Namespace
from flask import Flask, current_app, g, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from idp.core.errors import turn_unavailable
from idp.core.kv import StoreUnavailable
from idp.core.storage import Account, SessionClient, SsoSession, db

_signals = Namespace()
log = logging.getLogger(__name__)

COOKIE_DEV = "idp_session"
COOKIE_PROD = "__Host-idp_session"


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, initial=None, sid: str | None = None, new: bool = False) -> None:
        def on_update(self):
            self.modified = True

        super().__init__(initial, on_update)
        self._sid = sid  # a new session gets its id when first saved
        self.new = new
        self.modified = False
        self.previous_sid: str | None = None
        # The shared store could not be read: this session is never saved, and the
        # request is answered 503 (the error page itself still renders from it).
        self.unavailable = False

    @property
    def sid(self) -> str:
        if self._sid is None:
            self._sid = secrets.token_urlsafe(32)
        return self._sid

    def regenerate(self) -> None:
        """A new id for the same data; the old id stops working."""
        if self.previous_sid is None and self._sid is not None:
            self.previous_sid = self._sid
        self._sid = secrets.token_urlsafe(32)
        self.modified = True


class KvSessionInterface(SessionInterface):
    def __init__(self, production: bool, idle_timeout: int) -> None:
        self.cookie = COOKIE_PROD if production else COOKIE_DEV
        self.secure = production
        self.idle_timeout = idle_timeout

    def _key(self, sid: str) -> str:
        return f"session:{sid}"

    def open_session(self, app: Flask, req) -> ServerSession | None:
        if req.path in app.extensions.get("idp.sessionless", ()):
            return None  # Flask's null session: nothing read from or written to the store
        sid = req.cookies.get(self.cookie)
        if sid and len(sid) < 100:
            try:
                raw = app.extensions["idp.kv"].get(self._key(sid))
            except StoreUnavailable:
                broken = ServerSession(new=True)
                broken.unavailable = True
                return broken
            if raw is not None:
                try:
                    return ServerSession(json.loads(raw), sid=sid)
                except ValueError:
                    pass
        return ServerSession(new=True)

    def save_session(self, app: Flask, sess: ServerSession, response) -> None:
        if self.is_null_session(sess) or sess.unavailable:
            return
        kv = app.extensions["idp.kv"]
        try:
            self._save(kv, sess, response)
        except StoreUnavailable as exc:
            log.error("browser session not saved, answering 503: %s", exc)
            turn_unavailable(response)

    def _save(self, kv, sess: ServerSession, response) -> None:
        if sess.previous_sid:
            kv.delete(self._key(sess.previous_sid))
        if not sess:
            if not sess.new:
                kv.delete(self._key(sess.sid))
                response.delete_cookie(
                    self.cookie, path="/", secure=self.secure, samesite="Lax", httponly=True
                )
            return
        if sess.new and self._cross_site_post_without_cookie():
            return
        if sess.modified or sess.new or sess.previous_sid or _needs_touch(sess):
            sess["_t"] = int(time.time())
            kv.set(self._key(sess.sid), json.dumps(dict(sess)).encode(), self.idle_timeout)
            response.set_cookie(
                self.cookie,
                sess.sid,
                httponly=True,
                secure=self.secure,
                samesite="Lax",
                path="/",
                max_age=None,
            )
        response.vary.add("Cookie")

    def _cross_site_post_without_cookie(self) -> bool:
        """A cross-site POST never carries our ``SameSite=Lax`` cookie. Answering it with a
        new session cookie would replace the browser's real one: a forged form (to
        ``/logout``, say) would log the person out without ever reaching their session."""
        return (
            request.method == "POST"
            and self.cookie not in request.cookies
            and request.headers.get("Sec-Fetch-Site") == "cross-site"
        )


def _needs_touch(sess) -> bool:
    return int(time.time()) - int(sess.get("_t", 0)) > 60


def sessionless(app: Flask, *paths: str) -> None:
    """Paths served without a browser session (health checks, metrics): no store round trip."""
    app.extensions.setdefault("idp.sessionless", set()).update(paths)


def _refuse_without_store() -> None:
    if getattr(session, "unavailable", False):
        raise StoreUnavailable("the browser session could not be read")


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.session_interface = KvSessionInterface(settings.production, settings.session_idle_timeout)
    app.before_request(_refuse_without_store)


# ---------------------------------------------------------------------------
# SSO session
# ---------------------------------------------------------------------------


def current_sso() -> tuple[SsoSession, Account] | None:
    """The browser's live SSO session and its account, or None."""
    if "sso" in g:
        return g.sso
    result = None
    sid = session.get("sid")
    if sid:
        row = db.session.get(SsoSession, sid)
        now = int(time.time())
        if row is not None and row.ended_at is None and row.expires_at > now:
            account = db.session.get(Account, row.account_id)
            if account is not None and account.status == "active":
                if now - row.last_seen_at > 60:
                    row.last_seen_at = now
                    db.session.commit()
                result = (row, account)
    g.sso = result
    return result


#: Sent when an SSO session ends (logout, another person logging in on the browser,
#: the account disabled, ...) with ``row`` and ``reason``; the OpenID layer
#: (``idp.oidc.logout``) listens: it revokes the session's grants and tells the RPs.
sso_ended = _signals.signal("sso-ended")


def end_sso(row: SsoSession, reason: str, extra_events: dict | None = None) -> None:
    """End one SSO session: marked ended here, then everywhere through :data:`sso_ended`
    (``extra_events`` are added to each relying party's logout token)."""
    if row.ended_at is None:
        row.ended_at = int(time.time())
    db.session.commit()
    sso_ended.send(current_app._get_current_object(), row=row, reason=reason, extra_events=extra_events)
    g.pop("sso", None)


def start_sso(account: Account, level: str, methods: list[str], amr: list[str]) -> SsoSession:
    """A completed login: the browser's SSO session, and a new browser session id.

    The same person logging in again on this browser (``prompt=login``,
    ``max_age``, a step-up) keeps the session and its ``sid``: only the
    authentication (``auth_time``, level, methods) changes, so every RP's ID
    token keeps naming the session that logout will end. Someone else logging
    in ends the previous person's session everywhere first.
    """
    settings = current_app.extensions["idp.settings"]
    now = int(time.time())
    row = _live_row(session.get("sid"))
    if row is not None and row.account_id != account.id:
        end_sso(row, reason="other_user_logged_in")
        row = None
    if row is None:
        row = SsoSession(id=secrets.token_urlsafe(24), account_id=account.id, created_at=now)
        db.session.add(row)
    row.auth_time = now
    row.level = level
    row.methods = methods
    row.amr = amr
    row.last_seen_at = now
    row.expires_at = now + settings.session_absolute_timeout
    row.user_agent = (request.user_agent.string or "")[:255]
    row.ip = request.remote_addr
    db.session.commit()
    session.regenerate()
    session["sid"] = row.id
    g.pop("sso", None)
    return row


def _live_row(sid: str | None) -> SsoSession | None:
    row = db.session.get(SsoSession, sid) if sid else None
    if row is None or row.ended_at is not None or row.expires_at <= int(time.time()):
        return None
    return row


def add_client(sso: SsoSession, client_id: str) -> None:
    if db.session.get(SessionClient, (sso.id, client_id)) is None:
        db.session.add(SessionClient(session_id=sso.id, client_id=client_id))
        db.session.commit()
