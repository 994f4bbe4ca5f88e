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

from flask import Flask, current_app, g, request, session
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import select
from werkzeug.datastructures import CallbackDict

from idp.core.errors import turn_unavailable
from idp.core.kv import StoreUnavailable
from idp.core.storage import Account, SessionClient, SsoSession, db

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

    def open_session(self, app: Flask, req) -> ServerSession:
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
        if sess.unavailable:
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


def _needs_touch(sess) -> bool:
    return int(time.time()) - int(sess.get("_t", 0)) > 60


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


def start_sso(account: Account, level: str, methods: list[str], amr: list[str]) -> SsoSession:
    """A completed login: a new SSO session and a new browser session id."""
    settings = current_app.extensions["idp.settings"]
    now = int(time.time())
    old = session.get("sid")
    row = SsoSession(
        id=secrets.token_urlsafe(24),
        account_id=account.id,
        auth_time=now,
        level=level,
        methods=methods,
        amr=amr,
        created_at=now,
        last_seen_at=now,
        expires_at=now + settings.session_absolute_timeout,
        user_agent=(request.user_agent.string or "")[:255],
        ip=request.remote_addr,
    )
    db.session.add(row)
    if old and old != row.id:
        prev = db.session.get(SsoSession, old)
        if prev is not None and prev.ended_at is None:
            if prev.account_id == account.id:
                # Same person logging in again (step-up, prompt=login): the RPs stay in the session.
                for sc in db.session.scalars(
                    select(SessionClient).where(SessionClient.session_id == prev.id)
                ):
                    db.session.add(SessionClient(session_id=row.id, client_id=sc.client_id))
                prev.ended_at = now
            else:
                # Another person on this browser: the previous one is logged out everywhere.
                from idp.oidc.logout import end_sso

                end_sso(prev, reason="other_user_logged_in")
    db.session.commit()
    session.regenerate()
    session["sid"] = row.id
    g.pop("sso", None)
    return row


def add_client(sso: SsoSession, client_id: str) -> None:
    if db.session.get(SessionClient, (sso.id, client_id)) is None:
        db.session.add(SessionClient(session_id=sso.id, client_id=client_id))
        db.session.commit()
