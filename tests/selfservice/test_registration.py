"""Self-registration: identify → SMS code → username + password → e-mail + terms → link → active."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from idp.core.storage import Account, AuditEvent, db
from idp.selfservice.registration import PendingRegistration
from tests.conftest import authorize_params, exchange, query_of
from tests.support.account_flows import (
    BIRTHDATE,
    CARD,
    CARD_2,
    FAST,
    MOBILE,
    MOBILE_2,
    all_emails,
    all_sms,
    csrf,
    customer_line,
    emails_to,
    last_code,
    link_in,
    load_customers,
    path_of,
    submit,
)
from tests.support.clock import app_clock, clock_fixture  # noqa: F401 (the "clock" fixture)

NEW_PASSWORD = "purple elephants dance at noon"
EMAIL = "jeanne.dupont@example.org"


@pytest.fixture
def app(make_app):
    return make_app(FAST)


@pytest.fixture
def customer(app):
    load_customers(app, customer_line())


def identify(client, card=CARD, birthdate=BIRTHDATE, **extra):
    return submit(client, "/register/", {"card_number": card, "birthdate": birthdate, **extra})


def register(client, app, username="jeanne", email=EMAIL, number=MOBILE):
    """Every step up to the e-mail; returns the answer to the last form."""
    resp = identify(client)
    assert resp.status_code == 303 and resp.location.endswith("/register/code"), resp.get_data(as_text=True)
    resp = submit(client, "/register/code", {"code": last_code(app, number)})
    assert resp.status_code == 303 and resp.location.endswith("/register/account"), resp.get_data(
        as_text=True
    )
    resp = submit(
        client,
        "/register/account",
        {"username": username, "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD},
    )
    assert resp.status_code == 303 and resp.location.endswith("/register/contact"), resp.get_data(
        as_text=True
    )
    return submit(
        client, "/register/contact", {"email": email, "email_repeat": email.upper(), "accept_terms": "y"}
    )


def confirm(client, link: str):
    path = path_of(link)
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True))})


def accounts(app) -> list[Account]:
    with app.app_context():
        rows = db.session.scalars(select(Account)).all()
        db.session.expunge_all()
        return rows


def test_full_registration_makes_a_verified_account_that_logs_in_with_password_and_sms(
    app, client, customer, clock
):
    resp = register(client, app)
    assert resp.status_code == 303 and resp.location.endswith("/register/sent")
    assert EMAIL in client.get("/register/sent").get_data(as_text=True)
    assert accounts(app) == []  # nothing before the link
    [mail] = emails_to(app, EMAIL)
    link = link_in(mail)
    assert link.startswith("http://localhost/register/confirm/")  # from the issuer
    assert link in mail["html"]
    resp = confirm(client, link)
    assert resp.status_code == 303 and resp.location.endswith("/register/welcome")
    [account] = accounts(app)
    assert account.username == "jeanne" and account.email == EMAIL and account.email_verified
    assert account.phone == MOBILE and account.phone_verified
    assert account.customer_id is not None and account.terms_version == "2026-01"
    assert (account.given_name, account.family_name, account.birthdate) == ("Jeanne", "Dupont", BIRTHDATE)
    with app.app_context():
        events = [e.event for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert {"registration_started", "registration_link_sent", "registration_completed"} <= set(events)

    # Not logged in by the link: the normal login (password, then the SMS code) reaches the portal.
    assert client.get("/account/").status_code == 302
    params, verifier = authorize_params()
    resp = client.get("/authorize", query_string=params)
    tx_path = path_of(resp.location)
    resp = submit(client, tx_path + "/password", {"username": "Jeanne", "password": NEW_PASSWORD})
    assert resp.status_code == 303 and resp.location.endswith("/code"), resp.get_data(as_text=True)
    clock.t += 1
    resp = submit(client, path_of(resp.location), {"code": last_code(app)})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    resp = client.get(resp.location)
    while resp.status_code in (302, 303) and "/callback" not in resp.location:
        resp = client.get(resp.location)
    code = query_of(resp.location)["code"]
    assert exchange(client, code, verifier).status_code == 200


def test_starting_again_replaces_the_pending_registration_and_the_old_link_stops_working(
    app, client, customer, clock
):
    register(client, app)
    old_link = link_in(emails_to(app, EMAIL)[-1])
    clock.t += 120  # "I never got the link": later, the customer starts again
    register(client, app, email="other@example.org")
    new_link = link_in(emails_to(app, "other@example.org")[-1])
    assert client.get(path_of(old_link)).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(PendingRegistration)) == 1
    assert confirm(client, new_link).status_code == 303
    assert [a.email for a in accounts(app)] == ["other@example.org"]


def test_a_customer_who_has_an_account_gets_no_second_one(app, client, customer, clock):
    register(client, app)
    confirm(client, link_in(emails_to(app, EMAIL)[-1]))
    clock.t += 120
    resp = identify(client)
    resp = submit(client, "/register/code", {"code": last_code(app)})
    assert resp.status_code == 200
    assert "already have an account" in resp.get_data(as_text=True)
    assert client.get("/register/account").status_code == 400
    assert len(accounts(app)) == 1


def test_the_link_is_single_use_and_a_get_does_not_use_it(app, client, customer, clock):
    register(client, app)
    link = link_in(emails_to(app, EMAIL)[-1])
    assert client.get(path_of(link)).status_code == 200  # a mail scanner fetching the link
    assert confirm(client, link).status_code == 303
    assert client.get(path_of(link)).status_code == 404
    page = client.get("/register/")
    resp = client.post(path_of(link), data={"csrf_token": csrf(page.get_data(as_text=True))})
    assert resp.status_code == 404
    assert len(accounts(app)) == 1


def test_the_link_expires(app, client, customer, clock):
    register(client, app)
    link = link_in(emails_to(app, EMAIL)[-1])
    clock.t += 86400 + 1
    assert client.get(path_of(link)).status_code == 404
    assert accounts(app) == []


def test_identification_answers_the_same_whether_or_not_a_customer_matched(app, make_app, customer, clock):
    answers = []
    for card, birthdate in (
        (CARD, BIRTHDATE),
        (CARD_2, BIRTHDATE),
        (CARD, "1990-01-01"),
    ):
        c = app.test_client()
        resp = identify(c, card=card, birthdate=birthdate)
        page = c.get("/register/code")
        body = page.get_data(as_text=True)
        answers.append((resp.status_code, resp.location, page.status_code, body.replace(csrf(body), "")))
    assert all(a == answers[0] for a in answers)
    assert len(all_sms(app)) == 1  # only the real customer's phone got a code


def test_without_a_match_every_code_is_wrong_with_the_same_message(app, customer, clock):
    real, fake = app.test_client(), app.test_client()
    identify(real)
    identify(fake, card=CARD_2)
    code = last_code(app)
    wrong = submit(real, "/register/code", {"code": "000000" if code != "000000" else "111111"})
    guessed = submit(fake, "/register/code", {"code": code})
    assert wrong.status_code == guessed.status_code == 400
    strip = lambda r: r.get_data(as_text=True).replace(csrf(r.get_data(as_text=True)), "")  # noqa: E731
    assert strip(wrong) == strip(guessed)


def test_too_many_wrong_codes_end_the_step(app, client, customer, clock):
    identify(client)
    for _ in range(4):
        assert submit(client, "/register/code", {"code": "999999"}).status_code == 400
    resp = submit(client, "/register/code", {"code": "999999"})
    assert resp.status_code == 400 and "Too many wrong codes" in resp.get_data(as_text=True)
    assert client.get("/register/code").status_code == 400


def test_resend_waits_and_replaces_the_code(app, client, customer, clock):
    identify(client)
    first = last_code(app)
    resp = submit(client, "/register/code", {"action": "resend"})
    assert resp.status_code == 400 and "wait" in resp.get_data(as_text=True)
    clock.t += 61
    resp = submit(client, "/register/code", {"action": "resend"})
    assert resp.status_code == 200
    assert len(all_sms(app)) == 2
    if last_code(app) != first:
        assert submit(client, "/register/code", {"code": first}).status_code == 400
    assert submit(client, "/register/code", {"code": last_code(app)}).status_code == 303


def test_steps_cannot_be_skipped(app, client, customer, clock):
    for path in ("/register/code", "/register/account", "/register/contact"):
        assert client.get(path).status_code == 400
    identify(client)
    assert client.get("/register/account").status_code == 400
    assert client.get("/register/contact").status_code == 400


def test_only_the_form_fields_are_taken(app, client, customer, clock):
    """Mass assignment: verified flags, the customer link, status and terms come from the flow only."""
    identify(client, customer_id="999", phone="+32499000000")
    submit(client, "/register/code", {"code": last_code(app)})
    submit(
        client,
        "/register/account",
        {
            "username": "jeanne",
            "password": NEW_PASSWORD,
            "password_repeat": NEW_PASSWORD,
            "status": "admin",
            "email_verified": "0",
        },
    )
    submit(
        client,
        "/register/contact",
        {
            "email": EMAIL,
            "email_repeat": EMAIL,
            "accept_terms": "y",
            "terms_version": "1999",
            "phone": MOBILE_2,
            "customer_id": "999",
            "sub": "chosen",
        },
    )
    confirm(client, link_in(emails_to(app, EMAIL)[-1]))
    [account] = accounts(app)
    assert account.status == "active" and account.terms_version == "2026-01"
    assert account.phone == MOBILE and account.customer_id != 999 and account.sub != "chosen"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"username": "jo"}, "3 to 64 characters"),
        ({"username": "jean ne"}, "3 to 64 characters"),
        ({"password": "short", "password_repeat": "short"}, "at least 8 characters"),
        ({"password": "password123", "password_repeat": "password123"}, "too common"),
        ({"password": "jeanne-is-my-name", "password_repeat": "jeanne-is-my-name"}, "your username"),
        ({"password_repeat": "something else entirely"}, "not the same"),
    ],
)
def test_account_step_refuses_bad_choices_with_the_reason(app, client, customer, clock, fields, message):
    identify(client)
    submit(client, "/register/code", {"code": last_code(app)})
    data = {"username": "jeanne", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD, **fields}
    resp = submit(client, "/register/account", data)
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)


def test_a_taken_username_is_refused(app, client, customer, make_user, clock):
    make_user("jeanne")
    identify(client)
    submit(client, "/register/code", {"code": last_code(app)})
    resp = submit(
        client,
        "/register/account",
        {"username": "JEANNE", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD},
    )
    assert resp.status_code == 400 and "already taken" in resp.get_data(as_text=True)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"email_repeat": "other@example.org"}, "not the same"),
        ({"email": "nope", "email_repeat": "nope"}, "valid e-mail"),
        ({"accept_terms": ""}, "accept the terms"),
    ],
)
def test_contact_step_needs_the_address_twice_and_the_terms(app, client, customer, clock, fields, message):
    identify(client)
    submit(client, "/register/code", {"code": last_code(app)})
    submit(
        client,
        "/register/account",
        {"username": "jeanne", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD},
    )
    data = {"email": EMAIL, "email_repeat": EMAIL, "accept_terms": "y", **fields}
    resp = submit(client, "/register/contact", {k: v for k, v in data.items() if v})
    assert resp.status_code == 400 and message in resp.get_data(as_text=True)
    assert all_emails(app) == []


def test_account_page_offers_the_live_policy_check(app, client, customer, clock):
    identify(client)
    submit(client, "/register/code", {"code": last_code(app)})
    html = client.get("/register/account").get_data(as_text=True)
    assert 'autocomplete="new-password"' in html and "js/password_policy.js" in html
    assert "onpaste" not in html and "<script>" not in html
    token = csrf(html)
    resp = client.post(
        "/register/password-policy",
        json={"password": "password", "username": "jeanne"},
        headers={"X-CSRFToken": token},
    )
    assert resp.status_code == 200 and resp.json["ok"] is False
    assert any("too common" in p for p in resp.json["problems"])
    resp = client.post(
        "/register/password-policy", json={"password": NEW_PASSWORD}, headers={"X-CSRFToken": token}
    )
    assert resp.json == {"ok": True, "problems": []}
    assert (
        client.post("/register/password-policy", json={"password": "x"}).status_code == 400
    )  # no CSRF token
    assert client.get("/static/js/password_policy.js").status_code == 200


def test_open_mode_sends_the_code_to_the_number_typed(make_app):
    app = make_app({**FAST, "registration": {**FAST["registration"], "mode": "open"}})
    app_clock(app)
    client = app.test_client()
    resp = submit(
        client,
        "/register/",
        {
            "given_name": "Lena",
            "family_name": "Peeters",
            "birthdate": "1990-04-01",
            "mobile": "0470 99 98 88",
        },
    )
    assert resp.status_code == 303
    submit(client, "/register/code", {"code": last_code(app, MOBILE_2)})
    submit(
        client,
        "/register/account",
        {"username": "lena", "password": NEW_PASSWORD, "password_repeat": NEW_PASSWORD},
    )
    submit(
        client,
        "/register/contact",
        {"email": "lena@example.org", "email_repeat": "lena@example.org", "accept_terms": "y"},
    )
    confirm(client, link_in(emails_to(app, "lena@example.org")[-1]))
    [account] = accounts(app)
    assert (account.username, account.phone, account.customer_id) == ("lena", MOBILE_2, None)
    assert account.given_name == "Lena" and account.phone_verified and account.email_verified


def test_switched_off_registration_shows_the_operator_message(make_app):
    app = make_app(
        {
            "registration": {
                "enabled": False,
                "disabled_message": {
                    "fr": "Cette étape n’est plus d’actualité. Veuillez vous inscrire via itsme® ou eID.",
                    "en": "This step is no longer available. Please register with itsme® or eID.",
                },
            }
        }
    )
    client = app.test_client()
    resp = client.get("/register/", headers={"Accept-Language": "fr"})
    assert resp.status_code == 403
    assert "Veuillez vous inscrire via itsme® ou eID." in resp.get_data(as_text=True)


def test_login_page_links_to_registration_and_recovery(app, client):
    params, _ = authorize_params()
    resp = client.get("/authorize", query_string=params)
    html = client.get(path_of(resp.location)).get_data(as_text=True)
    assert "/register/?tx=" in html and "/recover/password?tx=" in html and "/recover/username?tx=" in html
