"""Usernames follow one rule everywhere (issue 12 part 2): PRECIS comparison, invisible and
direction-changing characters refused, look-alikes of existing names refused."""

from __future__ import annotations

import pytest

from idp.accounts.usernames import normalize_username, skeleton, username_problem
from tests.conftest import PASSWORD, csrf_from
from tests.support.sms_login import login_at_provider


@pytest.mark.parametrize(
    ("typed", "norm"),
    [("Alice", "alice"), ("  ALICE ", "alice"), ("ＡＬＩＣＥ", "alice"), ("Émilie", "émilie")],
)
def test_one_comparison_form(typed, norm):
    assert normalize_username(typed) == norm


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ab", "length"),
        ("x" * 65, "length"),
        ("ali ce", "spaces"),
        ("ali\u200bce", "invisible"),  # zero-width space
        ("\u202eecila", "invisible"),  # right-to-left override
        ("ali\u00adce", "invisible"),  # soft hyphen
        ("alice\u2066", "invisible"),
        ("alice😀", "characters"),
        ("jean.dupont@example.be", None),
        ("émilie_2", None),
    ],
)
def test_refused_characters_have_a_reason(name, code):
    assert username_problem(name) == code


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("paypal", "pаypal"),
        ("alice", "a1ice"),
        ("bill", "biII"),
        ("foo0", "fooO"),
        ("alice", "ΑLICE".lower()),
    ],
)
def test_look_alikes_share_a_skeleton(a, b):
    assert skeleton(a) == skeleton(b)


def test_different_names_have_different_skeletons():
    assert skeleton("alice") != skeleton("alina")


def submit(client, path, **data):
    token = csrf_from(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data})


def test_login_finds_the_account_by_any_form_of_its_name(app, client, make_user):
    from tests.support.sms_login import login_with_sms

    make_user("Alice")
    resp = login_with_sms(client, app, "/login/-", "ＡＬＩＣＥ", PASSWORD, "+32470123456")
    assert resp.status_code == 303


def test_rename_refuses_a_look_alike_and_invisible_characters(app, client, make_user):
    make_user("alice")
    make_user("paypal", email="p@example.com", phone="+32470999999")
    login_at_provider(client, app)
    resp = submit(client, "/account/username", username="pаypal")  # Cyrillic а
    assert resp.status_code == 400 and "looks too much like" in resp.get_data(as_text=True)
    resp = submit(client, "/account/username", username="ali\u202ece")
    assert resp.status_code == 400 and "direction-changing" in resp.get_data(as_text=True)
    resp = submit(client, "/account/username", username="ALICE")  # its own name, other case: fine
    assert resp.status_code in (302, 303)
    resp = submit(client, "/account/username", username="alice-new")
    assert resp.status_code in (302, 303)
    from idp.core.storage import Account, db

    with app.app_context():
        row = db.session.scalar(db.select(Account).where(Account.username == "alice-new"))
        assert row.username_norm == "alice-new" and row.username_skeleton == skeleton("alice-new")


def test_cli_and_import_refuse_a_look_alike(app, make_user):
    from idp.accounts.users import AccountError, create_local_account

    make_user("alice")
    with app.app_context(), pytest.raises(AccountError, match="looks too much like an existing"):
        create_local_account("a1ice", password=PASSWORD, email="x@example.com")
