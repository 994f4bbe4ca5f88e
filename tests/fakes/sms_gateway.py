"""A real HTTP SMS gateway on 127.0.0.1 for tests: Flask served by werkzeug in a thread.

It speaks what ``[sms.http]`` sends: JSON or form bodies with the fields of the
default template (``to``, ``text``, ``sender``), an auth header that must
equal ``auth_value``. Knobs make it slow, fail with 5xx or refuse with 4xx.

    with FakeSmsGateway(token="t0k") as gw:
        settings = HttpSmsSettings(url=gw.url, auth_value=gw.auth_value)
        ...
        assert gw.messages[-1]["to"] == "+32470123456"
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server


class FakeSmsGateway:
    def __init__(self, token: str = "test-sms-token", *, auth_header: str = "Authorization") -> None:
        self.token = token
        self.auth_header = auth_header
        self.messages: list[dict[str, Any]] = []  # accepted messages
        self.requests: list[dict[str, Any]] = []  # every request, accepted or not
        self.delay = 0.0  # seconds before every answer
        self._lock = threading.Lock()
        self._fail: list[int] = []
        self._refuse: list[int] = []
        self._seen: dict[str, int] = {}  # next_text's place per number
        self._slow: list[float] = []
        self._stopping = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def auth_value(self) -> str:
        """What ``[sms.http] auth_value`` must resolve to."""
        return f"Bearer {self.token}"

    # -- knobs -------------------------------------------------------------
    def fail_next(self, n: int, status: int = 503) -> None:
        """The next ``n`` requests get ``status`` (a server error) and deliver nothing."""
        with self._lock:
            self._fail.extend([status] * n)

    def refuse_next(self, n: int, status: int = 400) -> None:
        """The next ``n`` requests get ``status`` (a client error) and deliver nothing."""
        with self._lock:
            self._refuse.extend([status] * n)

    def slow_next(self, n: int, seconds: float) -> None:
        """The next ``n`` requests wait ``seconds`` before answering (then deliver)."""
        with self._lock:
            self._slow.extend([seconds] * n)

    def texts_to(self, number: str) -> list[str]:
        with self._lock:
            return [m["text"] for m in self.messages if m["to"] == number]

    def next_text(self, number: str, timeout: float = 15.0) -> str:
        """The next text to ``number`` not returned by an earlier call, waiting for it: the provider
        sends from its outbound queue, after the request that asked for the SMS has answered."""
        seen = self._seen.get(number, 0)
        deadline = time.monotonic() + timeout
        while True:
            texts = self.texts_to(number)
            if len(texts) > seen:
                self._seen[number] = len(texts)
                return texts[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no new SMS to {number} within {timeout} s")
            time.sleep(0.05)

    # -- server --------------------------------------------------------------
    def _app(self) -> Flask:
        app = Flask(__name__)

        @app.route("/send", methods=["POST", "PUT"])
        def send():
            with self._lock:
                slow = self._slow.pop(0) if self._slow else self.delay
            if slow:
                self._stopping.wait(slow)
            if request.is_json:
                body, kind = request.get_json(silent=True) or {}, "json"
            else:
                body, kind = request.form.to_dict(), "form"
            record = {
                "method": request.method,
                "kind": kind,
                "content_type": request.content_type,
                "headers": dict(request.headers),
                "body": body,
            }
            with self._lock:
                self.requests.append(record)
                if request.headers.get(self.auth_header) != self.auth_value:
                    return jsonify(error="unauthorized"), 401
                if self._fail:
                    return jsonify(error="try later"), self._fail.pop(0)
                if self._refuse:
                    return jsonify(error="refused"), self._refuse.pop(0)
                if not body.get("to") or not body.get("text"):
                    return jsonify(error="to and text are required"), 400
                message = {
                    "to": body["to"],
                    "text": body["text"],
                    "sender": body.get("sender"),
                    "kind": kind,
                }
                self.messages.append(message)
                return jsonify(id=str(len(self.messages)), status="accepted"), 201

        return app

    def start(self) -> FakeSmsGateway:
        self._stopping.clear()
        self._server = make_server("127.0.0.1", 0, self._app(), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/send"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-sms", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers that are "slow"
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeSmsGateway:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
