"""Registration and recovery e-mails through the real SMTP backend to an aiosmtpd server."""

from __future__ import annotations

import email
import email.policy
import re

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from idp.core.storage import Account, db
from tests.conftest import free_port
from tests.support.account_flows import (
    BIRTHDATE,
    CARD,
    Clock,
    csrf,
    customer_line,
    last_code,
    load_customers,
    submit,
)
from tests.support.sms_login import deliver, ready

PASSWORD = "purple elephants dance at noon"
LINK = re.compile(r"(http://localhost/\S+)")


class Collector:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"


@pytest.fixture
def smtp():
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture
def app(make_app, smtp):
    controller, _ = smtp
    app = make_app(
        {
            "mail": {
                "backend": "smtp",
                "sender": "no-reply@portal.example.be",
                "smtp": {"host": "127.0.0.1", "port": controller.port, "security": "none", "timeout": 5},
            },
            "registration": {"recovery": {"response_time_floor_ms": 0}},
        }
    )
    app.extensions["idp.clock"] = Clock()
    return app


def body(message, kind="plain") -> str:
    return message.get_body((kind,)).get_content()


def test_registration_link_arrives_by_smtp_in_text_and_html_and_activates(app, smtp):
    _, handler = smtp
    load_customers(app, customer_line())
    client = app.test_client()
    submit(client, "/register/", {"card_number": CARD, "birthdate": BIRTHDATE})
    submit(client, "/register/code", {"code": last_code(app)})
    submit(
        client, "/register/account", {"username": "jeanne", "password": PASSWORD, "password_repeat": PASSWORD}
    )
    resp = submit(
        client,
        "/register/contact",
        {"email": "jeanne@example.org", "email_repeat": "jeanne@example.org", "accept_terms": "y"},
    )
    assert resp.status_code == 303
    deliver(app)
    [message] = handler.messages
    assert message["To"] == "jeanne@example.org" and "Confirm your registration" in message["Subject"]
    assert message.get_content_type() == "multipart/alternative"
    link = LINK.search(body(message)).group(1)
    assert link in body(message, "html")
    path = link.removeprefix("http://localhost")
    page = client.get(path)
    resp = client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True))})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.scalar(select(Account.email_verified).where(Account.username == "jeanne"))


def test_password_reset_link_and_notice_arrive_by_smtp(app, smtp, make_user):
    _, handler = smtp
    ready(app, make_user())
    client = app.test_client()
    assert submit(client, "/recover/password", {"username": "alice"}).status_code == 303
    deliver(app)
    [message] = handler.messages
    link = LINK.search(body(message)).group(1)
    assert client.get(link.removeprefix("http://localhost")).status_code == 303
    new = "seven quiet lanterns over the bay"
    resp = submit(client, "/recover/password/new", {"password": new, "password_repeat": new})
    assert resp.status_code == 303
    deliver(app)
    assert [m["To"] for m in handler.messages] == ["alice@example.com", "alice@example.com"]
    assert "was changed" in handler.messages[-1]["Subject"]


def test_registration_waits_for_an_unreachable_mail_server(make_app):
    """The step answers at once; the confirmation mail waits in the queue and is retried."""
    app = make_app(
        {
            "mail": {
                "backend": "smtp",
                "sender": "no-reply@portal.example.be",
                "smtp": {"host": "127.0.0.1", "port": free_port(), "security": "none", "timeout": 2},
            },
            "registration": {"recovery": {"response_time_floor_ms": 0}},
        }
    )
    app.extensions["idp.clock"] = Clock()
    load_customers(app, customer_line())
    client = app.test_client()
    submit(client, "/register/", {"card_number": CARD, "birthdate": BIRTHDATE})
    submit(client, "/register/code", {"code": last_code(app)})
    submit(
        client, "/register/account", {"username": "jeanne", "password": PASSWORD, "password_repeat": PASSWORD}
    )
    resp = submit(
        client,
        "/register/contact",
        {"email": "jeanne@example.org", "email_repeat": "jeanne@example.org", "accept_terms": "y"},
    )
    assert resp.status_code == 303
    deliver(app)  # the server refuses the connection: the mail waits for the next try
    from idp.services.queue import OutboundMessage

    with app.app_context():
        [mail] = db.session.scalars(select(OutboundMessage).where(OutboundMessage.channel == "email")).all()
        assert (mail.status, mail.attempts) == ("pending", 1)
