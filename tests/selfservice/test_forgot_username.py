"""Forgotten username: card number + date of birth → SMS code → the username by e-mail."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.core.storage import Account, AuditEvent, db
from tests.support.account_flows import (
    BIRTHDATE,
    CARD,
    CARD_2,
    FAST,
    MOBILE,
    all_emails,
    all_sms,
    customer_line,
    emails_to,
    last_code,
    load_customers,
    submit,
    without_csrf,
)
from tests.support.clock import clock_fixture  # noqa: F401 (the "clock" fixture)


@pytest.fixture
def app(make_app):
    return make_app(FAST)


@pytest.fixture
def jeanne(app, make_user):
    """A customer with an account whose username she forgot."""
    load_customers(app, customer_line())
    make_user("jeanne.d", email="jeanne@example.org", phone=MOBILE)
    with app.app_context():
        account = db.session.scalar(select(Account).where(Account.username == "jeanne.d"))
        account.customer_id = db.session.scalar(select(db.text("id FROM customers")))
        db.session.commit()


def identify(client, card=CARD, birthdate=BIRTHDATE):
    return submit(client, "/recover/username", {"card_number": card, "birthdate": birthdate})


def test_card_and_birthdate_then_sms_code_send_the_username_by_email(app, client, jeanne, clock):
    resp = identify(client)
    assert resp.status_code == 303 and resp.location.endswith("/recover/username/code")
    resp = submit(client, "/recover/username/code", {"code": last_code(app)})
    assert resp.status_code == 303 and resp.location.endswith("/recover/username/sent")
    [mail] = emails_to(app, "jeanne@example.org")
    assert "jeanne.d" in mail["text"] and "jeanne.d" in mail["html"]
    assert "http://localhost/recover/password" in mail["text"]
    assert client.get("/recover/username/code").status_code == 400  # the step is over
    with app.app_context():
        events = [e.event for e in db.session.scalars(select(AuditEvent))]
    assert "username_reminder_requested" in events and "username_reminder_sent" in events


def test_no_username_before_the_code(app, client, jeanne, clock):
    identify(client)
    assert all_emails(app) == []
    resp = submit(client, "/recover/username/code", {"code": "000000" if last_code(app) != "000000" else "1"})
    assert resp.status_code == 400 and all_emails(app) == []


@pytest.mark.parametrize(("card", "birthdate"), [(CARD_2, BIRTHDATE), (CARD, "1990-01-01")])
def test_the_answer_is_the_same_whether_or_not_it_matched(app, jeanne, clock, card, birthdate):
    real, other = app.test_client(), app.test_client()
    a, b = identify(real), identify(other, card, birthdate)
    assert (a.status_code, a.location) == (b.status_code, b.location)
    assert without_csrf(real.get(a.location)) == without_csrf(other.get(b.location))
    # A code sent to the real customer is no use to the other flow.
    wrong = submit(other, "/recover/username/code", {"code": last_code(app)})
    right_but_other = submit(real, "/recover/username/code", {"code": "999999"})
    assert wrong.status_code == right_but_other.status_code == 400
    assert without_csrf(wrong) == without_csrf(right_but_other)
    assert len(all_sms(app)) == 1 and all_emails(app) == []


def test_a_customer_without_an_account_is_told_how_to_register(app, client, clock):
    load_customers(app, customer_line())
    identify(client)
    submit(client, "/recover/username/code", {"code": last_code(app)})
    [mail] = emails_to(app, "jeanne@example.org")
    assert "http://localhost/register/" in mail["text"]


def test_the_login_chooser_links_here(app, client):
    html = client.get("/login/-").get_data(as_text=True)
    assert 'href="/recover/username"' in html
