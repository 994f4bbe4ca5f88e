"""The old system's password check, as a real HTTP server on 127.0.0.1 for tests.

It speaks the protocol of ``[legacy]`` (docs/migration.md): ``POST`` JSON
``{"username", "password"}`` with ``Authorization: Bearer <token>``; answers
``200 {"valid": true, "account": {...}}`` or ``200 {"valid": false}``. Knobs
make it fail with 5xx or answer slowly; ``stop()`` makes it unreachable.

    with FakeLegacySystem() as old:
        old.add("jpeeters", "secret", mobile="+32470123456", mobile_verified=True)
        ...
        assert old.calls_for("jpeeters") == 1
"""

from __future__ import annotations

import hmac
import threading
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server


class FakeLegacySystem:
    def __init__(self, token: str | None = "old-system-token", *, ssl_context=None) -> None:
        self.token = token  # None: no bearer token expected (mutual TLS only)
        self.ssl_context = ssl_context
        self.accounts: dict[
            str, tuple[str, dict[str, Any]]
        ] = {}  # username (case-folded) -> (password, attrs)
        self.requests: list[dict[str, Any]] = []
        self.fail_status: int | None = None  # answer every call with this status
        self.delay = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def add(self, username: str, password: str, **attributes: Any) -> None:
        self.accounts[username.casefold()] = (password, attributes)

    def calls_for(self, username: str) -> int:
        with self._lock:
            return sum(
                1 for r in self.requests if r["body"].get("username", "").casefold() == username.casefold()
            )

    def _app(self) -> Flask:
        app = Flask(__name__)

        @app.post("/api/check-password")
        def check():
            if self.delay:
                self._stopping.wait(self.delay)
            body = request.get_json(silent=True) or {}
            with self._lock:
                self.requests.append({"headers": dict(request.headers), "body": body})
            if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
                return jsonify(error="unauthorized"), 401
            if self.fail_status:
                return jsonify(error="maintenance"), self.fail_status
            known = self.accounts.get(str(body.get("username", "")).casefold())
            if known is None or not hmac.compare_digest(known[0], str(body.get("password", ""))):
                return jsonify(valid=False)
            return jsonify(valid=True, account=known[1])

        return app

    def start(self) -> FakeLegacySystem:
        self._stopping.clear()
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True, ssl_context=self.ssl_context)
        scheme = "https" if self.ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}/api/check-password"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-legacy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeLegacySystem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
