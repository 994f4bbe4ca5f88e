"""Account resolution for federated logins (itsme, eID): idp.federation.resolve_identity."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from connectors.base import Identity
from idp.accounts import federation
from idp.accounts.federation import FederationError, resolve_identity
from idp.core.hashing import card_number_hash, national_number_hash
from idp.core.storage import Account, AuditEvent, Customer, FederatedIdentity, db

ITSME = "https://idp.prd.itsme.services/v2"
EID = "urn:be:fedict:eid"
NN = "85073003328"
OTHER_NN = "90010100123"


def itsme_identity(sub="sub-1", national_number=NN, **claims) -> Identity:
    base = {
        "given_name": "Marie",
        "family_name": "Dupont",
        "birthdate": "1985-07-30",
        "email": "marie.dupont@example.be",
        "email_verified": False,
        "phone_number": "+32470123456",
        "phone_number_verified": True,
        "address": {"street_address": "Rue de la Loi 16", "postal_code": "1000", "locality": "Bruxelles"},
    }
    base.update(claims)
    return Identity(
        method="itsme",
        issuer=ITSME,
        subject=sub,
        level="high",
        amr=("mfa", "hwk", "pin"),
        claims={k: v for k, v in base.items() if v is not None},
        national_number=national_number,
        card_number="591123456789",
    )


def eid_identity(card="592000111222", national_number=NN) -> Identity:
    return Identity(
        method="eid",
        issuer=EID,
        subject=card,
        level="high",
        amr=("hwk", "pin", "sc"),
        claims={"given_name": "Marie", "family_name": "Dupont", "birthdate": "1985-07-30"},
        national_number=national_number,
        card_number=card,
    )


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield app


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def links_of(account: Account) -> list[FederatedIdentity]:
    return list(
        db.session.scalars(select(FederatedIdentity).where(FederatedIdentity.account_id == account.id))
    )


def events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def add_customer(national_number=NN, **fields) -> Customer:
    fields.setdefault("customer_number", "C-1001")
    customer = Customer(national_number_hash=national_number_hash(national_number), **fields)
    db.session.add(customer)
    db.session.commit()
    return customer


# -- rule 1: a known (issuer, subject) -------------------------------------


def test_known_link_returns_its_account_and_records_the_login_time(ctx):
    first = resolve_identity(itsme_identity(), register=True)
    link = links_of(first)[0]
    link.last_login_at = 1
    db.session.commit()
    again = resolve_identity(itsme_identity(), register=False)
    assert again.id == first.id
    assert links_of(again)[0].last_login_at > 1
    assert count(Account) == 1 and count(FederatedIdentity) == 1


def test_known_link_to_a_disabled_account_is_refused(ctx):
    account = resolve_identity(itsme_identity(), register=True)
    account.status = "disabled"
    db.session.commit()
    with pytest.raises(FederationError) as err:
        resolve_identity(itsme_identity(), register=True)
    assert err.value.code == "account_disabled"


def test_known_link_that_now_proves_another_person_is_refused(ctx):
    resolve_identity(itsme_identity(), register=True)
    with pytest.raises(FederationError) as err:
        resolve_identity(itsme_identity(national_number=OTHER_NN), register=True)
    assert err.value.code == "no_account"


# -- rule 2: a known national number, an unknown subject ----------------------


def test_new_itsme_sub_with_a_known_national_number_relinks_the_same_account(ctx):
    first = resolve_identity(itsme_identity(sub="old-sub"), register=True)
    second = resolve_identity(itsme_identity(sub="new-sub"), register=False)
    assert second.id == first.id
    assert sorted(link.subject for link in links_of(first)) == ["new-sub", "old-sub"]
    relinks = events("federation.relink")
    assert len(relinks) == 1 and relinks[0].detail["via"] == "national_number"


def test_new_eid_card_relinks_and_the_card_number_is_stored_only_as_a_keyed_hash(ctx):
    first = resolve_identity(eid_identity(card="592000111222"), register=True)
    second = resolve_identity(eid_identity(card="592000333444"), register=False)
    assert second.id == first.id
    subjects = {link.subject for link in links_of(first)}
    assert subjects == {
        "card-hmac:" + card_number_hash("592000111222"),
        "card-hmac:" + card_number_hash("592000333444"),
    }


def test_eid_and_itsme_of_the_same_person_share_one_account(ctx):
    by_eid = resolve_identity(eid_identity(), register=True)
    by_itsme = resolve_identity(itsme_identity(), register=False)
    assert by_itsme.id == by_eid.id
    assert {link.method for link in links_of(by_eid)} == {"eid", "itsme"}


def test_relink_to_a_disabled_account_is_refused(ctx):
    account = resolve_identity(itsme_identity(sub="old-sub"), register=True)
    account.status = "disabled"
    db.session.commit()
    with pytest.raises(FederationError) as err:
        resolve_identity(itsme_identity(sub="new-sub"), register=True)
    assert err.value.code == "account_disabled"
    assert count(FederatedIdentity) == 1


# -- rule 3: a customer record -----------------------------------------------


def test_password_account_of_a_customer_and_a_later_itsme_login_are_one_account(ctx, make_user):
    customer = add_customer()
    make_user("marie", email="marie@example.com", phone="+32470999888")
    password_account = db.session.scalar(select(Account).where(Account.username_norm == "marie"))
    password_account.customer_id = customer.id
    db.session.commit()

    account = resolve_identity(itsme_identity(), register=False)

    assert account.id == password_account.id
    assert account.national_number_hash == national_number_hash(NN)
    assert account.email == "marie@example.com" and account.email_verified  # verified contacts stay
    assert account.phone == "+32470999888" and account.phone_verified
    assert count(Account) == 1
    link_events = events("federation.link")
    assert len(link_events) == 1 and link_events[0].detail == {"issuer": ITSME, "via": "customer"}
    # ... and from then on by the link, and by eID through the national number
    assert resolve_identity(itsme_identity(), register=False).id == account.id
    assert resolve_identity(eid_identity(), register=False).id == account.id


def test_customer_without_an_account_gets_one_from_the_record_with_unverified_contacts(ctx):
    customer = add_customer(given_name="MARIE (old)", email="marie@company-records.be", phone="0470 55 66 77")
    account = resolve_identity(itsme_identity(email=None, phone_number=None), register=False)
    assert account.customer_id == customer.id
    assert (account.given_name, account.family_name, account.birthdate) == ("Marie", "Dupont", "1985-07-30")
    assert account.email == "marie@company-records.be" and not account.email_verified
    assert account.phone == "+32470556677" and not account.phone_verified
    assert account.username is None and account.password_hash is None
    assert events("federation.create")[0].detail["via"] == "customer"


def test_customer_record_phone_becomes_verified_when_itsme_vouches_for_the_same_number(ctx):
    add_customer(phone="+32470123456")
    account = resolve_identity(itsme_identity(), register=False)
    assert account.phone == "+32470123456" and account.phone_verified


def test_customer_account_holding_another_national_number_is_not_linked(ctx, make_user):
    customer = add_customer()
    make_user("marie")
    account = db.session.scalar(select(Account).where(Account.username_norm == "marie"))
    account.customer_id = customer.id
    account.national_number_hash = national_number_hash(OTHER_NN)
    db.session.commit()
    with pytest.raises(FederationError) as err:
        resolve_identity(itsme_identity(), register=True)
    assert err.value.code == "no_account"
    assert count(FederatedIdentity) == 0


# -- rule 4: registration -----------------------------------------------------


def test_unknown_person_gets_an_account_when_registration_is_allowed(ctx):
    account = resolve_identity(itsme_identity(), register=True)
    assert account.status == "active" and account.customer_id is None
    assert account.national_number_hash == national_number_hash(NN)
    assert account.address == {
        "street_address": "Rue de la Loi 16",
        "postal_code": "1000",
        "locality": "Bruxelles",
    }
    # itsme never verifies e-mail addresses; its phone numbers are verified
    assert account.email == "marie.dupont@example.be" and not account.email_verified
    assert account.phone == "+32470123456" and account.phone_verified
    assert events("federation.create")[0].detail == {"issuer": ITSME, "via": "register"}


def test_unknown_person_is_refused_when_registration_is_off(ctx):
    with pytest.raises(FederationError) as err:
        resolve_identity(itsme_identity(), register=False)
    assert err.value.code == "no_account"
    assert count(Account) == 0 and count(FederatedIdentity) == 0


def test_identity_without_a_national_number_registers_by_subject_only(ctx):
    account = resolve_identity(itsme_identity(national_number=None), register=True)
    assert account.national_number_hash is None
    assert resolve_identity(itsme_identity(national_number=None), register=False).id == account.id
    # the national number, proved later, is added to the same account
    assert resolve_identity(itsme_identity(), register=False).id == account.id
    assert account.national_number_hash == national_number_hash(NN)


@pytest.mark.parametrize(
    "email, phone",
    [
        ("not an address", "+32470123456"),
        ("marie.dupont@example.be", "12"),
        ("", ""),
    ],
)
def test_malformed_contacts_from_upstream_are_left_out(ctx, email, phone):
    account = resolve_identity(itsme_identity(email=email, phone_number=phone), register=True)
    assert (account.email is None) == (email != "marie.dupont@example.be")
    assert (account.phone is None) == (phone != "+32470123456")


# -- never by e-mail or phone ----------------------------------------------------


def test_matching_email_and_phone_do_not_link_an_account(ctx, make_user):
    make_user("marie", email="marie.dupont@example.be", phone="+32470123456")
    with pytest.raises(FederationError):
        resolve_identity(itsme_identity(), register=False)
    account = resolve_identity(itsme_identity(), register=True)
    assert account.username is None  # a new account, not the password one
    assert count(Account) == 2


def test_profile_is_completed_but_never_overwritten(ctx, make_user):
    make_user(
        "marie", email="marie@example.com", phone="+32470999888", given_name="Marie-Claire", family_name=None
    )
    account = db.session.scalar(select(Account).where(Account.username_norm == "marie"))
    account.national_number_hash = national_number_hash(NN)
    db.session.commit()
    resolve_identity(itsme_identity(), register=False)
    db.session.refresh(account)
    assert account.given_name == "Marie-Claire"  # kept
    assert account.family_name == "Dupont" and account.birthdate == "1985-07-30"  # filled in
    assert account.email == "marie@example.com" and account.phone == "+32470999888"


def test_audit_records_never_contain_the_national_number(ctx):
    resolve_identity(itsme_identity(sub="a"), register=True)
    resolve_identity(itsme_identity(sub="b"), register=True)
    for event in db.session.scalars(select(AuditEvent)):
        assert NN not in repr(event.detail)


# -- concurrency --------------------------------------------------------------------


@pytest.mark.parametrize("national_number", [NN, None], ids=["by-national-number", "by-subject"])
def test_simultaneous_first_logins_of_one_person_end_in_one_account(app, monkeypatch, national_number):
    """Both requests look up (and find nothing) before either inserts; the loser retries."""
    barrier = threading.Barrier(2, timeout=10)
    original = federation._find_or_create
    waited: set[int] = set()

    def find_or_create_then_wait(*args, **kwargs):
        result = original(*args, **kwargs)
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            barrier.wait()
        return result

    monkeypatch.setattr(federation, "_find_or_create", find_or_create_then_wait)
    attempts = []
    original_resolve = federation._resolve

    def counting_resolve(*args, **kwargs):
        attempts.append(1)
        return original_resolve(*args, **kwargs)

    monkeypatch.setattr(federation, "_resolve", counting_resolve)
    results, errors = [], []

    def login():
        with app.app_context():
            try:
                results.append(
                    resolve_identity(itsme_identity(national_number=national_number), register=True).id
                )
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    threads = [threading.Thread(target=login) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 2 and results[0] == results[1]
    assert len(attempts) == 3  # the loser's insert was refused, rolled back and resolved again
    with app.app_context():
        assert count(Account) == 1 and count(FederatedIdentity) == 1
        assert len(events("federation.create")) == 1
