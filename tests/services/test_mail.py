"""E-mail backends and settings (idp.mail) against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import ssl
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from connectors.config import ConfigTable
from idp.services.mail import (
    EmailMessage,
    MailDeliveryError,
    MailSettings,
    SmtpMailer,
    SmtpSettings,
    make_mailer,
)
from idp.services.outbox import Outbox
from tests.support.production import tls_pair

SENDER = "noreply@portal.example.be"
MESSAGE = EmailMessage(
    to="jean.dupont@example.org",
    subject="Confirmez votre adresse",
    text="Bonjour,\nConfirmez : https://idp.example.be/confirm/abc\n",
    html="<p>Bonjour,</p><p><a href='https://idp.example.be/confirm/abc'>Confirmez</a></p>",
)


class Collector:
    def __init__(self) -> None:
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refused.example"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted"

    def parsed(self, i: int = -1) -> email.message.EmailMessage:
        return email.message_from_bytes(self.envelopes[i].content, policy=email.policy.default)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Users:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and self.users.get(auth_data.login.decode()) == (
            auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, handler
    controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made here."""
    return tls_pair(tmp_path_factory.mktemp("tls"))


def smtp_mailer(port: int, **smtp) -> SmtpMailer:
    settings = MailSettings(
        backend="smtp",
        sender=SENDER,
        sender_name="Mon Portail",
        smtp=SmtpSettings(**{"host": "127.0.0.1", "port": port, "security": "none", "timeout": 5, **smtp}),
    )
    return make_mailer(settings, production=True)


# -- SMTP --------------------------------------------------------------------


def test_smtp_delivers_multipart_text_and_html(smtp_server):
    controller, handler = smtp_server
    smtp_mailer(controller.port).send(MESSAGE)
    [envelope] = handler.envelopes
    assert envelope.mail_from == SENDER
    assert envelope.rcpt_tos == ["jean.dupont@example.org"]
    msg = handler.parsed()
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["From"] == "Mon Portail <noreply@portal.example.be>"
    assert msg["To"] == "jean.dupont@example.org"
    assert msg["Subject"] == "Confirmez votre adresse"
    assert msg["Message-ID"].endswith("@portal.example.be>")
    assert msg["Date"].datetime.tzinfo is not None
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == MESSAGE.text
    assert msg.get_body(("html",)).get_content().strip() == MESSAGE.html


def test_smtp_text_only_message_is_plain_text(smtp_server):
    controller, handler = smtp_server
    smtp_mailer(controller.port).send(EmailMessage(to="a@example.org", subject="Hé", text="Corps accentué"))
    msg = handler.parsed()
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().strip() == "Corps accentué"
    assert msg["Subject"] == "Hé"


def test_smtp_messages_get_distinct_message_ids(smtp_server):
    controller, handler = smtp_server
    mailer = smtp_mailer(controller.port)
    mailer.send(MESSAGE)
    mailer.send(MESSAGE)
    assert handler.parsed(0)["Message-ID"] != handler.parsed(1)["Message-ID"]


def test_smtp_refused_recipient_is_refused(smtp_server):
    controller, _ = smtp_server
    with pytest.raises(MailDeliveryError) as info:
        smtp_mailer(controller.port).send(EmailMessage(to="ghost@refused.example", subject="s", text="t"))
    assert info.value.code == "refused"


def test_smtp_server_down_is_unavailable():
    with pytest.raises(MailDeliveryError) as info:
        smtp_mailer(free_port()).send(MESSAGE)
    assert info.value.code == "unavailable"


def test_starttls_is_required_when_configured_and_server_lacks_it(smtp_server):
    controller, handler = smtp_server
    with pytest.raises(MailDeliveryError) as info:
        smtp_mailer(controller.port, security="starttls").send(MESSAGE)
    assert info.value.code == "unavailable"
    assert handler.envelopes == []


def test_starttls_with_auth_delivers(certificate):
    cert_file, key_file = certificate
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert_file, key_file)
    handler = Collector()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=tls,
        require_starttls=True,
        authenticator=Users({"relay-user": "relay-pass"}),
        auth_required=True,
    )
    controller.start()
    try:
        smtp_mailer(
            controller.port,
            security="starttls",
            username="relay-user",
            password="relay-pass",
            ca_file=cert_file,
        ).send(MESSAGE)
        assert len(handler.envelopes) == 1

        with pytest.raises(MailDeliveryError) as info:
            smtp_mailer(
                controller.port,
                security="starttls",
                username="relay-user",
                password="wrong",
                ca_file=cert_file,
            ).send(MESSAGE)
        assert info.value.code == "unavailable" and "authentication" in info.value.detail

        with pytest.raises(MailDeliveryError):  # an untrusted certificate is not accepted
            smtp_mailer(
                controller.port, security="starttls", username="relay-user", password="relay-pass"
            ).send(MESSAGE)
        assert len(handler.envelopes) == 1
    finally:
        controller.stop()


def test_log_names_only_the_recipient_domain(smtp_server, caplog):
    controller, _ = smtp_server
    caplog.set_level(logging.DEBUG, logger="idp.services.mail")
    smtp_mailer(controller.port).send(MESSAGE)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "mail to @example.org via smtp: sent" in logged
    assert "jean.dupont" not in logged and "confirm" not in logged


# -- development backends ----------------------------------------------------


@pytest.mark.parametrize("backend", ["console", "outbox"])
def test_production_refuses_development_backends(tmp_path, backend):
    settings = MailSettings(backend=backend, sender=SENDER, outbox=tmp_path / "outbox.jsonl")
    with pytest.raises(ValueError, match="development only"):
        make_mailer(settings, production=True)


def test_outbox_backend_records_the_message(tmp_path):
    path = tmp_path / "outbox.jsonl"
    make_mailer(MailSettings(backend="outbox", sender=SENDER, outbox=path), production=False).send(MESSAGE)
    [record] = Outbox(path).read()
    assert record["channel"] == "email"
    assert record["to"] == MESSAGE.to and record["subject"] == MESSAGE.subject
    assert record["text"] == MESSAGE.text and record["html"] == MESSAGE.html
    assert record["from"] == SENDER


def test_console_backend_prints_the_message(capsys):
    make_mailer(MailSettings(backend="console", sender=SENDER), production=False).send(MESSAGE)
    err = capsys.readouterr().err
    assert MESSAGE.to in err and MESSAGE.subject in err and "confirm/abc" in err


# -- settings --------------------------------------------------------------


def read_settings(data: dict, environ: dict | None = None, base_dir: Path | None = None):
    errors = []
    t = ConfigTable(data, "idp.toml", "mail", errors=errors, base_dir=base_dir, environ=environ or {})
    return MailSettings.from_table(t), errors


def test_settings_read_a_full_smtp_table(certificate):
    cert_file, _ = certificate
    settings, errors = read_settings(
        {
            "backend": "smtp",
            "sender": "NoReply@Portal.Example.BE",
            "sender_name": "Mon Portail",
            "smtp": {
                "host": "smtp.example.net",
                "port": 2587,
                "security": "starttls",
                "username": "idp",
                "password": "env:SMTP_PASSWORD",
                "timeout": 20,
                "ca_file": str(cert_file),
            },
        },
        environ={"SMTP_PASSWORD": "pw"},
    )
    assert errors == []
    assert settings.sender == "NoReply@portal.example.be"  # domain normalised by email-validator
    assert settings.smtp == SmtpSettings("smtp.example.net", 2587, "starttls", "idp", "pw", 20, cert_file)
    assert "pw" not in repr(settings.smtp).replace("password", "")


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465), ("none", 25)])
def test_settings_default_port_follows_security(security, port):
    settings, errors = read_settings(
        {"backend": "smtp", "sender": SENDER, "smtp": {"host": "localhost", "security": security}}
    )
    assert errors == []
    assert settings.smtp.port == port


@pytest.mark.parametrize("host", ["smtp.example.net", "10.0.0.5", "relay"])
def test_settings_refuse_plain_smtp_to_another_host(host):
    _, errors = read_settings(
        {"backend": "smtp", "sender": SENDER, "smtp": {"host": host, "security": "none"}}
    )
    assert [(e.key, "localhost" in e.reason) for e in errors] == [("mail.smtp.security", True)]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1"])
def test_settings_allow_plain_smtp_to_localhost(host):
    _, errors = read_settings(
        {"backend": "smtp", "sender": SENDER, "smtp": {"host": host, "security": "none"}}
    )
    assert errors == []


SMTP = {"host": "smtp.example.net"}


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"sender": SENDER}, "mail.backend", "is required"),
        ({"backend": "pigeon", "sender": SENDER}, "mail.backend", "one of"),
        ({"backend": "console"}, "mail.sender", "is required"),
        ({"backend": "console", "sender": "not an address"}, "mail.sender", "not a valid e-mail"),
        ({"backend": "console", "sender": "a@b@c"}, "mail.sender", "not a valid e-mail"),
        (
            {"backend": "console", "sender": SENDER, "sender_name": "A\nBcc: x"},
            "mail.sender_name",
            "one line",
        ),
        ({"backend": "outbox", "sender": SENDER}, "mail.outbox", "is required"),
        ({"backend": "smtp", "sender": SENDER}, "mail.smtp", "is required"),
        ({"backend": "smtp", "sender": SENDER, "smtp": {}}, "mail.smtp.host", "is required"),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "security": "ssl"}},
            "mail.smtp.security",
            "one of",
        ),
        ({"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "port": 0}}, "mail.smtp.port", "at least 1"),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "timeout": 0}},
            "mail.smtp.timeout",
            "at least 1",
        ),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "username": "u"}},
            "mail.smtp.password",
            "required",
        ),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "password": "env:P"}},
            "mail.smtp.username",
            "required",
        ),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "username": "u", "password": "hunter2"}},
            "mail.smtp.password",
            "env:NAME",
        ),
        (
            {"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "ca_file": "/nonexistent/ca.pem"}},
            "mail.smtp.ca_file",
            "not found",
        ),
        ({"backend": "smtp", "sender": SENDER, "smtp": {**SMTP, "pool": 3}}, "mail.smtp.pool", "unknown key"),
        ({"backend": "console", "sender": SENDER, "reply_to": "x@y.be"}, "mail.reply_to", "unknown key"),
    ],
)
def test_settings_report_bad_values(data, key, reason):
    _, errors = read_settings(data, environ={"P": "x"})
    assert any(e.key == key and reason in e.reason for e in errors), errors
