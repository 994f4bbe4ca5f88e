"""Flows that send a code on a mere identifier (the contract login) cannot lock or starve the
password login's second factor: their failure counter and SMS budget are their own."""

from __future__ import annotations

import pytest

from tests.conftest import PASSWORD, authorize_params, make_user_in
from tests.support.account_flows import path_of, submit, without_csrf
from tests.support.clock import clock_fixture  # noqa: F401 (the "clock" fixture)
from tests.support.sms_login import login_with_sms

CONFIG = {
    "methods": {"contract": {"enabled": True}},
    "registration": {"recovery": {"response_time_floor_ms": 0}},
}


@pytest.fixture
def app(make_app):
    app = make_app(CONFIG)
    make_user_in(app, "victim")
    return app


def contract_login_start(app, identifier="victim"):
    client = app.test_client()
    tx_path = path_of(client.get("/authorize", query_string=authorize_params()[0]).location)
    resp = submit(client, tx_path + "/contract", {"identifier": identifier})
    assert resp.status_code == 303
    return client, tx_path


def test_wrong_contract_login_codes_do_not_lock_the_password_login(app, clock):
    for _round in range(2):  # twice [otp] max_failures wrong codes, a new step each round
        client, tx_path = contract_login_start(app)
        for _ in range(5):
            submit(client, tx_path + "/contract/code", {"code": "000000"})
        clock.t += 61
    victim = app.test_client()
    location = victim.get("/authorize", query_string=authorize_params()[0]).location
    clock.t += 61
    resp = login_with_sms(victim, app, location, username="victim", password=PASSWORD)
    assert resp.status_code == 303, resp.get_data(as_text=True)


def test_contract_login_sms_do_not_use_up_the_password_logins_budget(app, clock):
    for _ in range(12):  # more than [otp.caps] per_account_per_day and per_number_per_day
        contract_login_start(app)
        clock.t += 61
    victim = app.test_client()
    location = victim.get("/authorize", query_string=authorize_params()[0]).location
    resp = login_with_sms(victim, app, location, username="victim", password=PASSWORD)
    assert resp.status_code == 303, resp.get_data(as_text=True)


def test_a_locked_account_answers_like_an_unknown_identifier(app, clock):
    """Once locked, a real account must not say so sooner than an unknown identifier would."""
    answers = {}
    for identifier in ("victim", "nobody-here"):
        for _round in range(2):
            client, tx_path = contract_login_start(app, identifier)
            pages = [
                without_csrf(submit(client, tx_path + "/contract/code", {"code": "000000"})).replace(
                    tx_path, "TX"
                )
                for _ in range(2)
            ]
            clock.t += 61
        answers[identifier] = pages
    assert answers["victim"] == answers["nobody-here"]
