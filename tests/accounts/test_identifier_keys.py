"""Versioned identifier hashes: a new identifier key, re-keying at login and by
`idp keys rehash-identifiers`, and the hashes made before keys per purpose."""

from __future__ import annotations

import sqlalchemy as sa

from idp.accounts.federation import resolve_identity
from idp.core import hashing
from idp.core.storage import Account, Customer, db
from tests.accounts.test_federation import NN, eid_identity, itsme_identity
from tests.support.tables import rows_mentioning

CARD = "592000111222"


def cli(app, *args):
    from flask.cli import ScriptInfo

    from idp.cli import main

    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def first_login(app) -> int:
    with app.test_request_context():
        account = resolve_identity(itsme_identity(), register=True)
        db.session.add(
            Customer(
                customer_number="C-1",
                national_number_hash=hashing.national_number_hash(NN),
                card_number_hash=hashing.card_number_hash(CARD),
                birthdate="1985-07-30",
            )
        )
        db.session.commit()
        return account.id


def stored(app) -> dict[str, tuple[str, str]]:
    with app.app_context():
        account = db.session.scalar(sa.select(Account))
        customer = db.session.scalar(sa.select(Customer))
        return {
            "account": (account.national_number_hash, account.national_number_key),
            "customer": (customer.national_number_hash, customer.national_number_key),
            "card": (customer.card_number_hash, customer.card_number_key),
        }


def test_every_hash_is_stored_with_the_id_of_its_key(app):
    first_login(app)
    with app.app_context():
        assert stored(app) == {
            "account": (hashing.national_number_hash(NN), "1"),
            "customer": (hashing.national_number_hash(NN), "1"),
            "card": (hashing.card_number_hash(CARD), "1"),
        }


def test_a_new_key_version_re_keys_the_number_at_the_next_login(make_app):
    old = make_app()
    account_id = first_login(old)
    new = make_app({"provider": {"identifier_key_version": 2}})
    with new.test_request_context():
        assert resolve_identity(itsme_identity(), register=False).id == account_id
        current = hashing.national_number_hash(NN)
    assert stored(new)["account"] == (current, "2")
    assert stored(new)["customer"] == (current, "2")


def test_rehash_identifiers_wraps_every_old_hash_and_logins_still_find_it(make_app):
    old = make_app()
    account_id = first_login(old)
    with old.app_context():
        v1_hashes = [hashing.national_number_hash(NN), hashing.card_number_hash(CARD)]
    new = make_app({"provider": {"identifier_key_version": 2}})
    result = cli(new, "keys", "rehash-identifiers")
    assert result.exit_code == 0, result.output
    assert "accounts.national_number_hash: 1 re-keyed" in result.output
    assert rows_mentioning(new, v1_hashes) == []  # the old key alone no longer finds anything
    assert {kid for _h, kid in stored(new).values()} == {"1>2"}
    assert cli(new, "keys", "rehash-identifiers").output.count(": 0 re-keyed") == 3  # idempotent
    with new.test_request_context():
        assert resolve_identity(eid_identity(card=CARD), register=False).id == account_id
        current = (hashing.national_number_hash(NN), hashing.card_number_hash(CARD))
    assert stored(new) == {
        "account": (current[0], "2"),
        "customer": (current[0], "2"),
        "card": (current[1], "2"),
    }


def test_hashes_made_before_keys_per_purpose_are_found_and_re_keyed(app):
    with app.test_request_context():
        legacy = hashing.identifier_hash("national-number", NN, "0")
        assert legacy != hashing.national_number_hash(NN)
        db.session.add(
            Account(sub="old", national_number_hash=legacy, national_number_key="0", status="active")
        )
        db.session.commit()
        account = resolve_identity(itsme_identity(), register=False)
        assert account.sub == "old"
        assert (account.national_number_hash, account.national_number_key) == (
            hashing.national_number_hash(NN),
            "1",
        )
