"""SMS gateway backends and settings (idp.sms, idp.outbox) against a real local HTTP gateway."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.config import ConfigTable
from idp.services.outbox import Outbox
from idp.services.sms import HttpSmsSettings, SmsDeliveryError, SmsSettings, make_sms_gateway
from tests.fakes.sms_gateway import FakeSmsGateway

REPO = Path(__file__).resolve().parents[2]
NUMBER = "+32470123456"
TEXT = "Votre code : 123456"


@pytest.fixture
def gateway():
    with FakeSmsGateway(token="s3cret") as gw:
        yield gw


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def http_gateway(gw: FakeSmsGateway, sleeps: Sleeps, **http):
    options = {"url": gw.url, "auth_value": gw.auth_value, "timeout": 2.0, **http}
    settings = SmsSettings(backend="http", sender="MyPortal", http=HttpSmsSettings(**options))
    return make_sms_gateway(settings, production=True, sleep=sleeps)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/send"


# -- HTTP backend ----------------------------------------------------------


def test_http_sends_json_body_with_auth_header(gateway, sleeps):
    http_gateway(gateway, sleeps).send(NUMBER, TEXT)
    assert gateway.messages == [{"to": NUMBER, "text": TEXT, "sender": "MyPortal", "kind": "json"}]
    request = gateway.requests[0]
    assert request["headers"]["Authorization"] == "Bearer s3cret"
    assert request["content_type"] == "application/json"
    assert sleeps == []


def test_http_sends_form_body(gateway, sleeps):
    http_gateway(gateway, sleeps, body="form").send(NUMBER, TEXT)
    assert gateway.messages == [{"to": NUMBER, "text": TEXT, "sender": "MyPortal", "kind": "form"}]
    assert gateway.requests[0]["content_type"] == "application/x-www-form-urlencoded"


def test_http_fills_the_configured_template(gateway, sleeps):
    template = {"to": "{to}", "text": "[{sender}] {text}", "channel": "sms", "ref": "idp-{to}"}
    http_gateway(gateway, sleeps, template=template, method="PUT").send(NUMBER, "a {brace} text")
    request = gateway.requests[0]
    assert request["method"] == "PUT"
    assert request["body"] == {
        "to": NUMBER,
        "text": "[MyPortal] a {brace} text",
        "channel": "sms",
        "ref": f"idp-{NUMBER}",
    }


def test_http_uses_the_configured_auth_header():
    with FakeSmsGateway(token="k", auth_header="X-Api-Key") as gw:
        settings = HttpSmsSettings(url=gw.url, auth_header="X-Api-Key", auth_value=gw.auth_value)
        make_sms_gateway(SmsSettings("http", http=settings), production=True).send(NUMBER, TEXT)
        assert gw.requests[0]["headers"]["X-Api-Key"] == "Bearer k"
        assert len(gw.messages) == 1


def test_http_wrong_token_is_refused(gateway, sleeps):
    sms = http_gateway(gateway, sleeps, auth_value="Bearer wrong")
    with pytest.raises(SmsDeliveryError) as info:
        sms.send(NUMBER, TEXT)
    assert info.value.code == "refused"
    assert gateway.messages == []


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_http_retries_5xx_with_backoff_then_succeeds(gateway, sleeps, status):
    gateway.fail_next(2, status=status)
    http_gateway(gateway, sleeps, retries=2, backoff=0.5).send(NUMBER, TEXT)
    assert len(gateway.requests) == 3
    assert len(gateway.messages) == 1
    assert sleeps == [0.5, 1.0]


def test_http_retries_a_timeout_then_succeeds(gateway, sleeps):
    gateway.slow_next(1, seconds=2)
    http_gateway(gateway, sleeps, timeout=0.2, retries=2).send(NUMBER, TEXT)
    assert sleeps == [0.5]
    # The slow first request may still be delivered after the client gave up
    # (a real gateway can do the same); the retry certainly was.
    assert {"to": NUMBER, "text": TEXT, "sender": "MyPortal", "kind": "json"} in gateway.messages


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_http_4xx_is_refused_without_retry(gateway, sleeps, status):
    gateway.refuse_next(1, status=status)
    with pytest.raises(SmsDeliveryError) as info:
        http_gateway(gateway, sleeps).send(NUMBER, TEXT)
    assert info.value.code == "refused"
    assert len(gateway.requests) == 1
    assert sleeps == []


def test_http_429_is_unavailable_without_retry(gateway, sleeps):
    gateway.refuse_next(1, status=429)
    with pytest.raises(SmsDeliveryError) as info:
        http_gateway(gateway, sleeps).send(NUMBER, TEXT)
    assert info.value.code == "unavailable"
    assert len(gateway.requests) == 1


def test_http_gives_up_after_retries_as_unavailable(gateway, sleeps):
    gateway.fail_next(10)
    with pytest.raises(SmsDeliveryError) as info:
        http_gateway(gateway, sleeps, retries=3, backoff=0.25).send(NUMBER, TEXT)
    assert info.value.code == "unavailable"
    assert len(gateway.requests) == 4
    assert sleeps == [0.25, 0.5, 1.0]
    assert gateway.messages == []


def test_http_gives_up_after_repeated_timeouts(gateway, sleeps):
    gateway.slow_next(2, seconds=2)
    with pytest.raises(SmsDeliveryError) as info:
        http_gateway(gateway, sleeps, timeout=0.2, retries=1).send(NUMBER, TEXT)
    assert info.value.code == "unavailable"
    assert sleeps == [0.5]


def test_http_connection_errors_are_retried_then_unavailable(sleeps):
    settings = SmsSettings("http", http=HttpSmsSettings(url=closed_port_url(), retries=2))
    with pytest.raises(SmsDeliveryError) as info:
        make_sms_gateway(settings, production=True, sleep=sleeps).send(NUMBER, TEXT)
    assert info.value.code == "unavailable"
    assert sleeps == [0.5, 1.0]


def test_log_masks_the_number_and_never_shows_the_text(gateway, sleeps, caplog):
    caplog.set_level(logging.DEBUG)
    http_gateway(gateway, sleeps).send(NUMBER, TEXT)
    gateway.refuse_next(1)
    with pytest.raises(SmsDeliveryError):
        http_gateway(gateway, sleeps).send(NUMBER, TEXT)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("idp"))
    assert "+32 ******456 via http: sent" in logged
    assert "+32 ******456 via http: refused (HTTP 400)" in logged
    assert "123456" not in logged.replace("******456", "")
    assert "code" not in logged


# -- development backends ----------------------------------------------------


@pytest.mark.parametrize("backend", ["console", "outbox"])
def test_production_refuses_development_backends(tmp_path, backend):
    settings = SmsSettings(backend=backend, outbox=tmp_path / "outbox.jsonl")
    with pytest.raises(ValueError, match="development only"):
        make_sms_gateway(settings, production=True)


def test_console_backend_prints_the_message(capsys):
    make_sms_gateway(SmsSettings(backend="console"), production=False).send(NUMBER, TEXT)
    assert f"[SMS from IDP to {NUMBER}] {TEXT}" in capsys.readouterr().err


def test_outbox_backend_writes_the_message(tmp_path):
    path = tmp_path / "outbox.jsonl"
    make_sms_gateway(SmsSettings(backend="outbox", outbox=path), production=False).send(NUMBER, TEXT)
    [record] = Outbox(path).read()
    assert record["channel"] == "sms" and record["to"] == NUMBER and record["text"] == TEXT
    assert record["sender"] == "IDP"
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None


# -- outbox ----------------------------------------------------------------


def test_outbox_appends_and_reads_in_order_with_injected_clock(tmp_path):
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    outbox = Outbox(tmp_path / "dev" / "outbox.jsonl", now=lambda: when)
    assert outbox.read() == []
    outbox.append({"channel": "sms", "to": NUMBER, "text": "one"})
    outbox.append({"channel": "email", "to": "a@example.be", "subject": "é", "text": "two"})
    assert [r["text"] for r in outbox.read()] == ["one", "two"]
    assert outbox.read()[0]["created_at"] == "2025-01-02T03:04:05+00:00"
    assert (outbox.path.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("record", [{"to": NUMBER}, {"channel": "fax", "to": NUMBER}, {"channel": "sms"}])
def test_outbox_rejects_records_without_channel_or_recipient(tmp_path, record):
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.jsonl").append(record)


APPENDER = """
import sys
from idp.services.outbox import Outbox
outbox = Outbox(sys.argv[1])
for i in range(int(sys.argv[3])):
    outbox.append({"channel": "sms", "to": sys.argv[2], "seq": i, "text": sys.argv[2] * 20000})
"""


def test_outbox_appends_from_many_processes_never_interleave(tmp_path):
    path = tmp_path / "outbox.jsonl"
    writers, each = 4, 25
    procs = [
        subprocess.Popen([sys.executable, "-c", APPENDER, str(path), f"w{n}", str(each)], cwd=REPO)
        for n in range(writers)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0] * writers
    records = Outbox(path).read()  # would raise on a torn line
    assert len(records) == writers * each
    for n in range(writers):
        mine = [r["seq"] for r in records if r["to"] == f"w{n}"]
        assert mine == list(range(each))
        assert all(r["text"] == f"w{n}" * 20000 for r in records if r["to"] == f"w{n}")


def test_outbox_read_sees_only_whole_lines(tmp_path):
    path = tmp_path / "outbox.jsonl"
    Outbox(path).append({"channel": "sms", "to": NUMBER, "text": "x"})
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["to"] == NUMBER


# -- settings --------------------------------------------------------------


def read_settings(data: dict, environ: dict | None = None, base_dir: Path | None = None):
    errors = []
    t = ConfigTable(data, "idp.toml", "sms", errors=errors, base_dir=base_dir, environ=environ or {})
    return SmsSettings.from_table(t), errors


def test_settings_read_a_full_http_table():
    settings, errors = read_settings(
        {
            "backend": "http",
            "sender": "MyPortal",
            "http": {
                "url": "https://sms.example.net/v1/messages",
                "method": "POST",
                "body": "form",
                "template": {"msisdn": "{to}", "message": "{text}", "from": "{sender}"},
                "auth_header": "X-Api-Key",
                "auth_value": "env:SMS_TOKEN",
                "timeout": 3,
                "retries": 1,
                "backoff": 0.2,
            },
        },
        environ={"SMS_TOKEN": "tok"},
    )
    assert errors == []
    assert settings.http == HttpSmsSettings(
        url="https://sms.example.net/v1/messages",
        body="form",
        template={"msisdn": "{to}", "message": "{text}", "from": "{sender}"},
        auth_header="X-Api-Key",
        auth_value="tok",
        timeout=3.0,
        retries=1,
        backoff=0.2,
    )
    assert "tok" not in repr(settings)


def test_settings_defaults_for_http():
    settings, errors = read_settings({"backend": "http", "http": {"url": "http://localhost:9000/send"}})
    assert errors == []
    assert settings.sender == "IDP"
    assert settings.http == HttpSmsSettings(url="http://localhost:9000/send")
    assert settings.http.template == {"to": "{to}", "text": "{text}", "sender": "{sender}"}


def test_settings_outbox_path_is_relative_to_the_config_file(tmp_path):
    settings, errors = read_settings({"backend": "outbox", "outbox": "var/outbox.jsonl"}, base_dir=tmp_path)
    assert errors == []
    assert settings.outbox == tmp_path / "var" / "outbox.jsonl"


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({}, "sms.backend", "is required"),
        ({"backend": "carrier-pigeon"}, "sms.backend", "must be one of"),
        ({"backend": "outbox"}, "sms.outbox", "is required"),
        ({"backend": "http"}, "sms.http", "is required"),
        ({"backend": "console", "sender": "A-Very-Long-Sender"}, "sms.sender", "1-11"),
        ({"backend": "console", "sender": ""}, "sms.sender", "1-11"),
        ({"backend": "console", "colour": "red"}, "sms.colour", "unknown key"),
        ({"backend": "http", "http": {"url": "http://sms.example.net/"}}, "sms.http.url", "https"),
        ({"backend": "http", "http": {"url": "ftp://sms.example.net/"}}, "sms.http.url", "https"),
        ({"backend": "http", "http": {"url": "/relative"}}, "sms.http.url", "https"),
        ({"backend": "http", "http": {}}, "sms.http.url", "is required"),
        ({"backend": "http", "http": {"url": "https://x.be", "method": "GET"}}, "sms.http.method", "one of"),
        ({"backend": "http", "http": {"url": "https://x.be", "body": "xml"}}, "sms.http.body", "one of"),
        (
            {"backend": "http", "http": {"url": "https://x.be", "auth_value": "tok"}},
            "sms.http.auth_value",
            "env:",
        ),
        (
            {"backend": "http", "http": {"url": "https://x.be", "auth_value": "env:MISSING"}},
            "sms.http.auth_value",
            "not set",
        ),
        (
            {"backend": "http", "http": {"url": "https://x.be", "auth_header": "A B"}},
            "sms.http.auth_header",
            "header",
        ),
        ({"backend": "http", "http": {"url": "https://x.be", "timeout": 0}}, "sms.http.timeout", "between"),
        (
            {"backend": "http", "http": {"url": "https://x.be", "timeout": "5s"}},
            "sms.http.timeout",
            "a number",
        ),
        ({"backend": "http", "http": {"url": "https://x.be", "retries": 9}}, "sms.http.retries", "at most 5"),
        ({"backend": "http", "http": {"url": "https://x.be", "backoff": -1}}, "sms.http.backoff", "between"),
        ({"backend": "http", "http": {"url": "https://x.be", "proxy": "x"}}, "sms.http.proxy", "unknown key"),
        (
            {"backend": "http", "http": {"url": "https://x.be", "template": {"to": "{to}", "t": "{body}"}}},
            "sms.http.template.t",
            "unknown placeholder",
        ),
        (
            {"backend": "http", "http": {"url": "https://x.be", "template": {"to": "{to}", "t": "{text"}}},
            "sms.http.template.t",
            "not a valid template",
        ),
        (
            {"backend": "http", "http": {"url": "https://x.be", "template": {"to": "{to}"}}},
            "sms.http.template",
            "{text}",
        ),
        (
            {"backend": "http", "http": {"url": "https://x.be", "template": {"to": 1, "t": "{text}"}}},
            "sms.http.template.to",
            "a string",
        ),
    ],
)
def test_settings_report_bad_values(data, key, reason):
    _, errors = read_settings(data)
    assert any(e.key == key and reason in e.reason for e in errors), errors


def test_settings_report_every_error_at_once():
    _, errors = read_settings(
        {"backend": "http", "sender": "", "http": {"url": "http://x.be", "retries": -1}}
    )
    assert {e.key for e in errors} == {"sms.sender", "sms.http.url", "sms.http.retries"}


def test_console_backend_can_write_to_a_given_stream():
    from idp.services.sms import ConsoleSmsGateway

    stream = io.StringIO()
    ConsoleSmsGateway("IDP", stream=stream).send(NUMBER, TEXT)
    assert TEXT in stream.getvalue()
