"""SMS and e-mails leave the request path through the durable queue (issue 12 part 4).

Real parts: an SMTP relay that hangs (a socket that accepts and never greets),
then aiosmtpd on the same port; the development outbox; the CLI. The tests'
apps run no worker of their own (``[outbound] worker = "external"``): the
tests are the worker (``queue.work``, what ``idp worker`` runs), except the
one that checks the in-process thread.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port, make_user_in
from tests.support.clock import app_clock
from tests.support.sms_login import deliver, outbox

ALICE_MAIL = "alice@example.com"


class HungRelay:
    """Accepts SMTP connections and never says a word (a relay that hangs)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(16)
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._held.append(conn)

    def close(self) -> None:
        self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._sock.close()
        for conn in self._held:
            conn.close()


class Collector:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


def forgot_password(client, username="alice"):
    from tests.conftest import csrf_from

    token = csrf_from(client.get("/recover/password").get_data(as_text=True))
    return client.post("/recover/password", data={"csrf_token": token, "username": username})


def rows(app):
    from idp.core.storage import db
    from idp.services.queue import OutboundMessage

    with app.app_context():
        return [(m.channel, m.status, m.attempts) for m in db.session.scalars(db.select(OutboundMessage))]


def test_a_hung_smtp_relay_neither_holds_the_request_nor_loses_the_mail(make_app):
    port = free_port()
    relay = HungRelay(port)
    app = make_app(
        {
            "mail": {
                "backend": "smtp",
                "sender": "no-reply@portal.example.be",
                "smtp": {"host": "127.0.0.1", "port": port, "security": "none", "timeout": 1},
            },
            "registration": {"recovery": {"response_time_floor_ms": 0}},
        }
    )
    clock = app_clock(app, time.time())
    make_user_in(app, email=ALICE_MAIL)
    client = app.test_client()
    known = forgot_password(client)
    unknown = forgot_password(client, "nobody")
    assert known.status_code == unknown.status_code == 303 and known.location == unknown.location
    assert relay.accepted == 0  # the requests never touched the relay
    assert rows(app) == [("email", "pending", 0)]

    deliver(app)  # the worker: the relay hangs, the try times out, the mail waits
    assert relay.accepted == 1 and rows(app) == [("email", "pending", 1)]

    relay.close()
    collector = Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.t += 60  # past the backoff
        deliver(app)
    finally:
        controller.stop()
    assert rows(app) == [("email", "sent", 2)]
    [mail] = collector.messages
    assert mail["To"] == ALICE_MAIL and "/recover/password/reset/" in mail.get_body(("plain",)).get_content()


def test_a_second_reset_request_keeps_the_first_link_valid(make_app):
    import re

    app = make_app({"registration": {"recovery": {"response_time_floor_ms": 0}}})
    make_user_in(app, email=ALICE_MAIL)
    client = app.test_client()
    forgot_password(client)
    forgot_password(client)
    links = [
        re.search(r"(/recover/password/reset/\S+)", m["text"]).group(1)
        for m in outbox(app).read()
        if m["channel"] == "email"
    ]
    assert len(links) == 2
    first = client.get(links[0])
    assert first.status_code in (302, 303) and "/recover/password/new" in first.location


def test_a_refused_sms_gives_back_the_caps_it_counted(app, make_user):
    from idp.login import otp
    from idp.services.sms import SmsDeliveryError

    class Refusing:
        def send(self, to, text, key=None):
            raise SmsDeliveryError("refused", "HTTP 400")

    app.extensions["idp.sms"] = Refusing()
    kv = app.extensions["idp.kv"]
    with app.test_request_context(environ_base={"REMOTE_ADDR": "198.51.100.9"}):
        otp.send_code(purpose="login", binding="b1", phone="+32470123456", account_id=7, lang="en")
        counters = {k: kv.get(k) for k in list(kv._data) if k.startswith(("otp:cap:", "otp:sends:"))}
        assert any(v == b"1" for v in counters.values())
    deliver(app)
    with app.test_request_context():
        assert otp.delivery("login", "b1") == "failed"
        after = {k: kv.get(k) for k in counters}
    assert all(v in (None, b"0") for v in after.values()), after


def test_two_workers_never_send_one_message_twice(app):
    from idp.services import queue

    with app.test_request_context():
        queue.enqueue("sms", "+32470123456", {"text": "hello"})
        [row_id] = [m.id for m in queue.db.session.scalars(queue.db.select(queue.OutboundMessage))]
        now = int(time.time())
        assert queue._claim(row_id, now, 60) is True
        assert queue._claim(row_id, now, 60) is False  # a second worker finds it taken
        assert queue._claim(row_id, now + 61, 60) is True  # the first worker died: lease expired


def test_health_says_when_the_queue_is_stuck(app):
    from idp.services import queue

    clock = app_clock(app, time.time())
    with app.test_request_context():
        assert queue.health() == queue.QueueHealth(0, None, 0, False)
        queue.enqueue("sms", "+32470123456", {"text": "hello"})
        clock.t += 301
        health = queue.health()
    assert health.pending == 1 and health.oldest_pending_age == 301 and health.stuck


def test_the_in_process_worker_thread_sends_in_the_background(make_app):
    app = make_app({"outbound": {"worker": "thread", "poll": 0.1}})
    with app.test_request_context():
        from idp.services import queue

        key = queue.enqueue("sms", "+32470123456", {"text": "background"})
    for _ in range(200):
        with app.app_context():
            if queue.status(key) == "sent":
                break
        threading.Event().wait(0.05)
    from idp.services.outbox import Outbox

    texts = [m["text"] for m in Outbox(app.extensions["idp.settings"].sms.outbox).read()]
    assert texts == ["background"]


def test_idp_worker_once_sends_what_is_due(app):
    from idp.services import queue

    with app.test_request_context():
        queue.enqueue("sms", "+32470123456", {"text": "from the cli"})
    from flask.cli import ScriptInfo

    from idp.cli import main

    result = app.test_cli_runner().invoke(main, ["worker", "--once"], obj=ScriptInfo(create_app=lambda: app))
    assert result.exit_code == 0 and "1 message(s) tried" in result.output
    from idp.services.outbox import Outbox

    [record] = Outbox(app.extensions["idp.settings"].sms.outbox).read()
    assert record["text"] == "from the cli" and record["key"]


@pytest.mark.parametrize("value", ["sometimes", 3])
def test_the_worker_setting_is_checked(make_app, value):
    from idp.core.settings import ConfigErrors

    with pytest.raises(ConfigErrors):
        make_app({"outbound": {"worker": value}})


def test_the_new_number_page_says_when_its_code_could_not_be_sent(app, make_user):
    from idp.services.sms import SmsDeliveryError
    from tests.conftest import csrf_from
    from tests.support.sms_login import login_at_provider

    make_user()
    client = app.test_client()
    login_at_provider(client, app)

    class Refusing:
        def send(self, to, text, key=None):
            raise SmsDeliveryError("refused", "HTTP 400")

    app.extensions["idp.sms"] = Refusing()
    token = csrf_from(client.get("/account/phone").get_data(as_text=True))
    resp = client.post("/account/phone", data={"csrf_token": token, "phone": "0470 55 66 77"})
    assert resp.status_code == 303 and resp.location.endswith("/account/phone/code")
    assert "could not be sent" not in client.get("/account/phone/code").get_data(as_text=True)
    deliver(app)
    page = client.get("/account/phone/code").get_data(as_text=True)
    assert "Your code could not be sent" in page
