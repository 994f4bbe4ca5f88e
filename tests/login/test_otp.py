"""The one-time code API (idp.otp): codes, resends, caps, lockout; on SQLite, PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import secrets
import threading

import pytest

from idp.services.sms import SmsDeliveryError
from tests.support.clock import Clock, app_clock, clock_fixture  # noqa: F401 (the "clock" fixture)
from tests.support.sms_login import (
    deliver,
    last_code,
    sms_to,
)

NUMBER = "+32470123456"
REDIS_URL = "redis://127.0.0.1:6379/15"


def send(app, binding="tx1", phone=NUMBER, account_id=None, purpose="login", ip="198.51.100.7"):
    from idp.login import otp

    with app.test_request_context(environ_base={"REMOTE_ADDR": ip}):
        otp.send_code(purpose=purpose, binding=binding, phone=phone, account_id=account_id, lang="en")


def check(app, code, binding="tx1", account_id=None, purpose="login"):
    from idp.login import otp

    with app.test_request_context():
        otp.check_code(purpose=purpose, binding=binding, code=code, account_id=account_id)


def error_of(fn, *args, **kwargs):
    from idp.login.otp import OtpError

    with pytest.raises(OtpError) as info:
        fn(*args, **kwargs)
    return info.value


def other(code: str) -> str:
    return "000000" if code != "000000" else "111111"


def test_code_is_six_random_digits_stored_only_hashed(app, clock):
    send(app)
    code = last_code(app)
    assert len(code) == 6 and code.isdigit()
    raw = app.extensions["idp.kv"].get("otp:code:login:tx1")
    assert code.encode() not in raw
    assert set(json.loads(raw)) >= {"h", "exp"}


def test_code_is_accepted_once(app, clock):
    send(app)
    code = last_code(app)
    check(app, code)
    assert error_of(check, app, code).code == "invalid"


def test_code_is_bound_to_its_purpose_and_binding(app, clock):
    send(app, binding="tx1")
    code = last_code(app)
    assert error_of(check, app, code, binding="tx2").code == "invalid"
    assert error_of(check, app, code, purpose="register").code == "invalid"
    check(app, code, binding="tx1")


def test_code_is_bound_to_its_account(app, clock):
    send(app, account_id=1)
    assert error_of(check, app, last_code(app), account_id=2).code == "invalid"


def test_wrong_and_expired_codes_get_the_same_error(app, clock):
    send(app)
    code = last_code(app)
    wrong = error_of(check, app, other(code))
    clock.t += 300
    expired = error_of(check, app, code)
    assert (wrong.code, str(wrong)) == (expired.code, str(expired)) == ("invalid", "invalid")


def test_resend_waits_then_replaces_the_previous_code(app, clock):
    send(app)
    first = last_code(app)
    err = error_of(send, app)
    assert err.code == "resend_too_soon" and err.retry_after == 60
    clock.t += 60
    send(app)
    second = last_code(app)
    if first != second:
        assert error_of(check, app, first).code == "invalid"
    check(app, second)


def test_resends_are_limited_per_binding(app, clock):
    send(app)
    for _ in range(3):
        clock.t += 60
        send(app)
    clock.t += 60
    assert error_of(send, app).code == "too_many_resends"
    send(app, binding="tx2")  # another login may send again


@pytest.mark.parametrize(
    ("caps", "calls", "expected"),
    [
        ({"per_number_per_day": 2}, [{"binding": f"b{i}"} for i in range(3)], "per_number_per_day"),
        (
            {"per_account_per_day": 2},
            [{"binding": f"b{i}", "account_id": 7, "phone": f"+3247012345{i}"} for i in range(3)],
            "per_account_per_day",
        ),
        (
            {"per_ip_per_hour": 2},
            [{"binding": f"b{i}", "phone": f"+3247012345{i}"} for i in range(3)],
            "per_ip_per_hour",
        ),
        (
            {"global_per_day": 2},
            [{"binding": f"b{i}", "phone": f"+3247012345{i}", "ip": f"203.0.113.{i}"} for i in range(3)],
            "global_per_day",
        ),
    ],
)
def test_sms_pumping_caps(make_app, caps, calls, expected):
    app = make_app({"otp": {"caps": caps}})
    app_clock(app)
    for call in calls[:-1]:
        send(app, **call)
    err = error_of(send, app, **calls[-1])
    assert (err.code, err.detail) == ("cap_reached", expected)
    assert len([m for m in app.extensions["idp.kv"].get("otp:code:login:" + calls[-1]["binding"]) or []]) == 0


def test_caps_reset_the_next_day(make_app):
    app = make_app({"otp": {"caps": {"per_number_per_day": 1}}})
    clock = app_clock(app)
    send(app, binding="a")
    assert error_of(send, app, binding="b").code == "cap_reached"
    clock.t += 86400
    send(app, binding="c")


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+33612345678", "number_country_not_allowed"),
        ("+3225551234", "number_not_mobile"),
        ("+32 12", "number_invalid"),
        ("+44 7911 123456", "number_country_not_allowed"),
    ],
)
def test_numbers_outside_the_allowlist_or_not_mobile_are_refused(app, clock, number, reason):
    err = error_of(send, app, phone=number)
    assert (err.code, err.detail) == ("delivery_refused", reason)
    assert sms_to(app, number) == []


def test_allowlist_is_configurable(make_app):
    app = make_app({"otp": {"allowed_prefixes": ["+32", "+33"]}})
    app_clock(app)
    send(app, phone="+33 6 12 34 56 78")
    assert sms_to(app, "+33612345678")


class RefusingGateway:
    def __init__(self, code):
        self.code = code
        self.tries = 0

    def send(self, to, text, key=None):
        self.tries += 1
        raise SmsDeliveryError(self.code, "test")


def delivery(app, binding="tx1", purpose="login"):
    from idp.login import otp

    with app.test_request_context():
        return otp.delivery(purpose, binding)


@pytest.mark.parametrize(("gateway_code", "tries"), [("refused", 1), ("unavailable", 6)])
def test_delivery_errors_keep_the_previous_code_and_allow_a_retry(app, clock, gateway_code, tries):
    """The resend is queued; the worker retries only temporary failures, then gives up; the code
    the person already has stays valid, and the failed send is not counted."""
    send(app)
    code = last_code(app)
    clock.t += 60
    real = app.extensions["idp.sms"]
    app.extensions["idp.sms"] = refusing = RefusingGateway(gateway_code)
    send(app)  # answered at once: only queued
    assert delivery(app) == "pending"
    while delivery(app) == "pending":
        deliver(app)
        clock.t += 10
    assert delivery(app) == "failed" and refusing.tries == tries
    app.extensions["idp.sms"] = real
    check(app, code)


def test_the_previous_code_stays_valid_until_the_resend_is_sent(app, clock):
    send(app)
    first = last_code(app)
    clock.t += 60
    send(app)  # queued, not sent yet
    check(app, first)


def test_after_the_resend_is_sent_the_previous_code_is_refused(app, clock):
    send(app)
    first = last_code(app)
    clock.t += 60
    send(app)
    second = last_code(app)  # the worker ran: the new code went out
    if first != second:
        assert error_of(check, app, first).code == "invalid"
    check(app, second)


def test_failures_lock_with_growing_delays_and_success_resets(app, clock):
    results = []
    send(app, account_id=5)
    code = last_code(app)
    for _ in range(5):
        results.append(error_of(check, app, other(code), account_id=5).code)
    assert results == ["invalid"] * 4 + ["locked"]
    err = error_of(check, app, code, account_id=5)
    assert (err.code, err.retry_after) == ("locked", 60)
    clock.t += 60
    for _ in range(5):
        err = error_of(check, app, other(code), account_id=5)
    assert (err.code, err.retry_after) == ("locked", 120)
    clock.t += 120
    send(app, binding="tx9", account_id=5)
    check(app, last_code(app), binding="tx9", account_id=5)
    from idp.login import lockout

    with app.app_context():
        assert lockout.status("otp:account:5", int(clock.t)) == (0, 0)


def test_failure_counter_survives_resends_and_new_bindings(app, clock):
    send(app, binding="a", account_id=3)
    for _ in range(3):
        error_of(check, app, "000001", binding="a", account_id=3)
    clock.t += 60
    send(app, binding="a", account_id=3)  # a resend
    send(app, binding="b", account_id=3)  # a new login
    error_of(check, app, "000001", binding="b", account_id=3)
    assert error_of(check, app, "000001", binding="a", account_id=3).code == "locked"


def test_without_an_account_the_counter_is_per_binding(app, clock):
    send(app, binding="reg1", purpose="register")
    for _ in range(5):
        error_of(check, app, "000001", binding="reg1", purpose="register")
    assert error_of(check, app, "000001", binding="reg1", purpose="register").code == "locked"
    send(app, binding="reg2", purpose="register", phone="+32470123457")
    check(app, last_code(app, "+32470123457"), binding="reg2", purpose="register")


def parallel_wrong_guesses(app, n=50, account_id=11):
    from idp.login import otp

    send(app, account_id=account_id)
    code = last_code(app)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def guess():
        with app.test_request_context():
            barrier.wait()
            try:
                otp.check_code(purpose="login", binding="tx1", code=other(code), account_id=account_id)
                result = "accepted"
            except otp.OtpError as exc:
                result = exc.code
            finally:
                from idp.core.storage import db

                db.session.remove()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes, code


def compared_codes(app) -> int:
    from idp.core.storage import AuditEvent, db

    with app.app_context():
        rows = db.session.query(AuditEvent).filter_by(event="code_check", outcome="failure").all()
        return sum(1 for r in rows if (r.detail or {}).get("attempt"))


def test_fifty_parallel_wrong_codes_never_get_more_than_max_failures_tries(app, clock):
    outcomes, code = parallel_wrong_guesses(app)
    assert len(outcomes) == 50 and "accepted" not in outcomes
    assert outcomes.count("invalid") <= 4  # the fifth try locks
    assert compared_codes(app) <= 5
    assert error_of(check, app, code, account_id=11).code == "locked"


def test_config_errors_are_reported_together(tmp_path):
    from connectors.config import ConfigTable
    from idp.login.otp import OtpSettings

    t = ConfigTable(
        {
            "code_ttl": 5,
            "max_failures": 0,
            "allowed_prefixes": ["32"],
            "default_region": "be",
            "caps": {"per_ip_per_hour": 0, "bogus": 1},
            "unknown": True,
        },
        "x.toml",
    )
    OtpSettings.from_table(t)
    keys = sorted(e.key for e in t.errors)
    assert keys == [
        "allowed_prefixes[0]",
        "caps.bogus",
        "caps.per_ip_per_hour",
        "code_ttl",
        "default_region",
        "max_failures",
        "unknown",
    ]


# ---------------------------------------------------------------------------
# Redis: the shared store of several workers
# ---------------------------------------------------------------------------


@pytest.fixture
def redis_apps(make_app):
    redis = pytest.importorskip("redis")
    r = redis.Redis.from_url(REDIS_URL)
    try:
        r.ping()
    except redis.ConnectionError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but no Redis on 127.0.0.1:6379", pytrace=False)
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test-{secrets.token_hex(6)}:"  # this test's own keys: parallel tests share the server
    apps = [
        make_app(
            {
                "storage": {"kv_url": REDIS_URL, "kv_prefix": prefix},
                "otp": {"caps": {"per_number_per_day": 3}},
            }
        )
        for _ in range(2)
    ]
    clock = Clock()
    for a in apps:
        a.extensions["idp.clock"] = clock
    yield apps, clock
    for key in r.scan_iter(match=prefix + "*"):
        r.delete(key)


def test_redis_a_code_sent_by_one_worker_is_checked_by_another_once(redis_apps):
    (a, b), _clock = redis_apps
    send(a)
    code = last_code(a)
    check(b, code)
    assert error_of(check, a, code).code == "invalid"


def test_redis_resend_wait_and_caps_are_shared_between_workers(redis_apps):
    (a, b), clock = redis_apps
    send(a, binding="x")
    assert error_of(send, b, binding="x").code == "resend_too_soon"
    send(b, binding="y")
    send(a, binding="z")
    assert error_of(send, b, binding="w").code == "cap_reached"


def test_redis_fifty_parallel_wrong_codes(redis_apps):
    (a, _b), _clock = redis_apps
    outcomes, code = parallel_wrong_guesses(a)
    assert outcomes.count("invalid") <= 4 and "accepted" not in outcomes
    assert compared_codes(a) <= 5


def test_redis_login_throttle_counts_across_workers(redis_apps):
    (a, b), _clock = redis_apps
    from idp.login.password import throttled

    seen = []
    for i in range(40):
        app = (a, b)[i % 2]
        with app.test_request_context(environ_base={"REMOTE_ADDR": "192.0.2.1"}):
            seen.append(throttled("password"))
    assert seen.count(False) == 30  # login_per_ip_per_minute, counted in Redis for both workers
