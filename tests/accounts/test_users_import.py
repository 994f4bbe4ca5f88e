"""``idp users import``: old hashes kept, all or nothing, idempotent, re-hashed at the first login."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from idp.accounts.importer import AccountImportError, import_accounts
from idp.accounts.origins import AccountOrigin
from idp.cli import main
from idp.core.storage import Account, AuditEvent, Customer, db
from tests.conftest import PASSWORD
from tests.support import legacy_accounts as legacy
from tests.support.sms_login import login_at_provider, post_password, ready

FORMATS = list(legacy.hashes())


def cli(app, *args):
    return app.test_cli_runner().invoke(main, list(args), obj=ScriptInfo(create_app=lambda: app))


def snapshot(app) -> list[tuple]:
    """Every account and origin row, as stored."""
    with app.app_context():
        accounts = [
            tuple(getattr(a, c.key) for c in Account.__table__.columns)
            for a in db.session.scalars(select(Account).order_by(Account.id))
        ]
        origins = [
            (o.account_id, o.source, o.created_at, o.first_login_at)
            for o in db.session.scalars(select(AccountOrigin).order_by(AccountOrigin.account_id))
        ]
        db.session.expunge_all()
    return accounts + origins


def run_import(app, text: str, fmt: str = "jsonl", allow_weak: bool = False):
    with app.app_context():
        return import_accounts(text, fmt, allow_weak=allow_weak)


def stored_hash(app, username: str) -> str:
    with app.app_context():
        return db.session.scalar(
            select(Account.password_hash).where(Account.username_norm == username.lower())
        )


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_import_stores_each_format_with_contacts_names_and_origin(app, fmt):
    rows = legacy.one_per_format()
    text = legacy.to_csv(rows) if fmt == "csv" else legacy.to_jsonl(rows)
    result = run_import(app, text, fmt)
    assert (result.created, result.updated, result.unchanged, result.kept) == (len(FORMATS), 0, 0, 0)
    with app.app_context():
        a = db.session.scalar(select(Account).where(Account.username == "old_bcrypt"))
        assert a.password_hash.startswith("$2y$") and a.status == "active"
        assert (a.email, a.email_verified, a.phone, a.phone_verified) == (
            "old_bcrypt@example.com",
            True,
            "+32470100001",
            True,
        )
        assert (a.given_name, a.family_name, a.must_change_password) == ("Jan", "Peeters", False)
        keycloak = db.session.scalar(select(Account).where(Account.username == "old_keycloak"))
        assert keycloak.password_hash.startswith("$pbkdf2-sha256$1000$")
        sources = db.session.scalars(select(AccountOrigin.source)).all()
        assert sources == ["import"] * len(FORMATS)
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "accounts_imported")).all()
        assert events[0].detail["created"] == len(FORMATS)


@pytest.mark.parametrize("name", FORMATS)
def test_first_login_of_each_format_replaces_the_hash_with_argon2id(app, client, name):
    run_import(app, legacy.to_jsonl(legacy.one_per_format()))
    username = f"old_{name}"
    with app.app_context():
        sub, phone = db.session.execute(
            select(Account.sub, Account.phone).where(Account.username == username)
        ).one()
    ready(app, sub)
    login_at_provider(client, app, username.upper(), legacy.LEGACY_PASSWORD, phone)
    after = stored_hash(app, username)
    assert after.startswith(app.extensions["idp.passwords"].current_prefix())
    assert app.extensions["idp.passwords"].verify(after, legacy.LEGACY_PASSWORD)
    with app.app_context():
        origin = db.session.scalar(select(AccountOrigin).join(Account).where(Account.username == username))
        assert origin.first_login_at is not None


def test_a_bad_line_rejects_the_whole_file_and_changes_nothing(app, tmp_path):
    run_import(app, legacy.to_jsonl([legacy.account("first", legacy.hashes()["bcrypt"], 1)]))
    before = snapshot(app)
    rows = legacy.one_per_format()
    rows[3]["mobile"] = "+3223456789"  # a landline
    rows[5]["password_hash"] = "plaintext"
    path = tmp_path / "accounts.csv"
    path.write_text(legacy.to_csv(rows), encoding="utf-8")
    result = cli(app, "users", "import", str(path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert f"{path}:5: mobile: not a mobile number" in lines
    assert f"{path}:7: password_hash: not a recognised password hash format (see docs/migration.md)" in lines
    assert lines[-1] == "2 problem(s); nothing was imported"
    assert snapshot(app) == before


def test_importing_twice_changes_nothing(app, tmp_path):
    path = tmp_path / "accounts.jsonl"
    path.write_text(legacy.to_jsonl(legacy.one_per_format()), encoding="utf-8")
    first = cli(app, "users", "import", str(path))
    assert first.exit_code == 0, first.output
    assert f"{len(FORMATS)} account(s): {len(FORMATS)} new, 0 updated" in first.output
    before = snapshot(app)
    again = cli(app, "users", "import", str(path))
    assert again.exit_code == 0, again.output
    assert f"0 new, 0 updated, {len(FORMATS)} unchanged, 0 kept" in again.output
    assert snapshot(app) == before


def test_reimport_updates_accounts_not_yet_used_and_keeps_those_used_since(app, client):
    h = legacy.hashes()
    run_import(
        app, legacy.to_jsonl([legacy.account("used", h["bcrypt"], 1), legacy.account("idle", h["bcrypt"], 2)])
    )
    with app.app_context():
        sub = db.session.scalar(select(Account.sub).where(Account.username == "used"))
    ready(app, sub)
    login_at_provider(client, app, "used", legacy.LEGACY_PASSWORD, "+32470100001")
    rehashed = stored_hash(app, "used")
    changed = [
        legacy.account("used", h["sha512_crypt"], 1, family_name="Old"),
        legacy.account("idle", h["sha512_crypt"], 2, family_name="New"),
    ]
    result = run_import(app, legacy.to_jsonl(changed))
    assert (result.created, result.updated, result.kept) == (0, 1, 1)
    assert stored_hash(app, "used") == rehashed  # an old hash never comes back
    assert stored_hash(app, "idle").startswith("$6$")
    with app.app_context():
        assert db.session.scalar(select(Account.family_name).where(Account.username == "used")) == "Peeters"


def test_a_username_of_an_account_made_here_is_refused(app, make_user):
    make_user("Alice")
    with pytest.raises(AccountImportError) as info:
        run_import(app, legacy.to_jsonl([legacy.account("ALICE", legacy.hashes()["bcrypt"])]))
    assert info.value.problems == [
        (1, "username: taken by an account that was not imported; rename one of them")
    ]


def test_accounts_link_to_customers_by_number(app):
    with app.app_context():
        db.session.add(Customer(customer_number="C-1001"))
        db.session.commit()
        customer_id = db.session.scalar(select(Customer.id))
    h = legacy.hashes()["bcrypt"]
    with pytest.raises(AccountImportError) as info:
        run_import(app, legacy.to_jsonl([legacy.account("jan", h, customer_number="C-404")]))
    assert info.value.problems == [(1, "customer_number: no customer C-404 (import the customers first)")]
    run_import(app, legacy.to_jsonl([legacy.account("jan", h, customer_number="C-1001")]))
    with app.app_context():
        assert db.session.scalar(select(Account.customer_id).where(Account.username == "jan")) == customer_id


def test_weak_hashes_need_the_setting_and_force_a_password_change(app):
    rows = [legacy.account("weak", legacy.weak_hash())]
    with pytest.raises(AccountImportError) as info:
        run_import(app, legacy.to_jsonl(rows))
    assert "allow_weak_legacy_hashes" in info.value.problems[0][1]
    result = run_import(app, legacy.to_jsonl(rows), allow_weak=True)
    assert result.weak == 1
    with app.app_context():
        assert db.session.scalar(select(Account.must_change_password).where(Account.username == "weak"))


def test_flags_and_unverified_contacts_are_kept_as_exported(app):
    h = legacy.hashes()["bcrypt"]
    rows = [
        legacy.account("ann", h, 1, must_reverify_mobile=True),
        legacy.account("bob", h, 2, email_verified=False, mobile_verified="no", must_change_password="yes"),
        {"username": "carl", "password_hash": h},
    ]
    run_import(app, legacy.to_csv(rows), "csv")
    with app.app_context():
        got = {
            a.username: (a.phone, a.phone_verified, a.email_verified, a.must_change_password)
            for a in db.session.scalars(select(Account))
        }
    assert got == {
        "ann": ("+32470100001", False, True, False),
        "bob": ("+32470100002", False, False, True),
        "carl": (None, False, False, False),
    }


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"username": "ab"}, "username: required, 3 to 64 characters without spaces"),
        ({"username": "jan peeters"}, "username: required, 3 to 64 characters without spaces"),
        ({"password_hash": ""}, "password_hash: required"),
        (
            {"password_hash": "$2b$04$short"},
            "password_hash: not a well-formed bcrypt hash ($2b$NN$ + 53 characters)",
        ),
        ({"email": "not-an-address"}, "email: not a valid e-mail address"),
        ({"email": None}, "email_verified: true but there is no e-mail address"),
        ({"mobile": "12"}, "mobile: not a valid phone number"),
        (
            {"mobile_verified": "maybe"},
            "mobile_verified: must be true or false (also 1/0, yes/no, or empty for false)",
        ),
        ({"given_name": "x" * 201}, "given_name: longer than 200 characters"),
        ({"family_name": 12}, "family_name: must be text"),
        (
            {"nickname": "J"},
            "nickname: unknown field (expected: username, password_hash, email, email_verified, "
            "mobile, mobile_verified, given_name, family_name, customer_number, must_change_password, "
            "must_reverify_mobile)",
        ),
    ],
)
def test_bad_fields_are_reported_by_line_and_field(app, change, problem):
    good = legacy.account("first", legacy.hashes()["bcrypt"], 1)
    bad = {**legacy.account("second", legacy.hashes()["bcrypt"], 2), **change}
    with pytest.raises(AccountImportError) as info:
        run_import(app, legacy.to_jsonl([good, bad]))
    assert info.value.problems == [(2, problem)]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_broken_files_are_reported(app):
    h = legacy.hashes()["bcrypt"]
    line = json.dumps(legacy.account("jan", h))
    with pytest.raises(AccountImportError) as info:
        run_import(app, line + "\n{not json\n[1]\n" + line.replace("jan", "JAN") + "\n")
    assert info.value.problems == [
        (2, "line: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
        (3, "line: expected one JSON object per line"),
        (4, "username: already on line 1 (usernames ignore case)"),
    ]
    with pytest.raises(AccountImportError) as info:
        run_import(app, "user,password_hash\njan,x\n", "csv")
    assert info.value.problems[0][0] == 1 and "missing: username; unknown: user" in info.value.problems[0][1]
    with pytest.raises(AccountImportError) as info:
        run_import(app, "", "jsonl")
    assert info.value.problems == [(1, "file: no accounts")]


def test_no_hash_is_ever_logged_printed_or_audited(app, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    rows = legacy.one_per_format()
    rows[0]["mobile"] = "nonsense"
    path = tmp_path / "accounts.jsonl"
    path.write_text(legacy.to_jsonl(rows), encoding="utf-8")
    refused = cli(app, "users", "import", str(path))
    rows[0]["mobile"] = "+32470100001"
    path.write_text(legacy.to_jsonl(rows), encoding="utf-8")
    done = cli(app, "users", "import", str(path))
    assert done.exit_code == 0, done.output
    with app.app_context():
        audit = json.dumps([e.detail for e in db.session.scalars(select(AuditEvent))])
    everything = refused.output + done.output + caplog.text + audit
    for h in legacy.hashes().values():
        text = h if isinstance(h, str) else json.loads(h["secretData"])["value"]
        assert text[-20:] not in everything


def test_migration_status_counts_imported_signed_in_and_legacy(app, client):
    h = legacy.hashes()
    run_import(app, legacy.to_jsonl([legacy.account(f"user{i}", h["bcrypt"], i) for i in range(1, 4)]))
    with app.app_context():
        sub = db.session.scalar(select(Account.sub).where(Account.username == "user1"))
    ready(app, sub)
    login_at_provider(client, app, "user1", legacy.LEGACY_PASSWORD, "+32470100001")
    result = cli(app, "users", "migration-status", "--json")
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert {k: v for k, v in status.items() if k != "last_first_sign_in"} == {
        "imported": 3,
        "imported_signed_in_since": 1,
        "imported_not_signed_in_yet": 2,
        "imported_still_on_legacy_hash": 2,
        "lazy_migrated": 0,
    }
    assert status["last_first_sign_in"].endswith("Z")
    text = cli(app, "users", "migration-status")
    assert "imported still on legacy hash" in text.output


def doc_examples() -> list[tuple[str, str]]:
    """The (format, text) of every example file in docs/migration.md."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "migration.md").read_text(encoding="utf-8")
    return re.findall(r"```(jsonl|csv)\n(.*?)```", text, flags=re.S)


def test_every_example_of_the_migration_guide_imports_and_verifies(make_app):
    app = make_app({"passwords": {"allow_weak_legacy_hashes": True}})
    with app.app_context():
        db.session.add(Customer(customer_number="C-1001"))
        db.session.commit()
    examples = doc_examples()
    assert [fmt for fmt, _ in examples] == ["jsonl", "csv", "jsonl"]
    passwords = app.extensions["idp.passwords"]
    for fmt, text in examples:
        result = run_import(app, text, fmt, allow_weak=True)
        assert result.created + result.unchanged + result.updated == len(text.strip().splitlines()) - (
            fmt == "csv"
        )
    with app.app_context():
        accounts = db.session.scalars(select(Account)).all()
        assert len(accounts) == 11
        for a in accounts:
            assert passwords.verify(a.password_hash, "Oude wachtwoord 2019!"), a.username
        by_name = {a.username: a for a in accounts}
        assert by_name["keycloak-user"].phone_verified is False  # must_reverify_mobile in the CSV
        assert by_name["shadow-user"].phone == "+32470100009"
        assert by_name["ldap-user"].must_change_password


def test_a_mobile_marked_for_re_verification_is_confirmed_by_the_login_code(app, client, make_user):
    h = legacy.hashes()["bcrypt"]
    run_import(app, legacy.to_jsonl([legacy.account("ann", h, 7, must_reverify_mobile=True)]))
    with app.app_context():
        sub = db.session.scalar(select(Account.sub).where(Account.username == "ann"))
    ready(app, sub)
    login_at_provider(client, app, "ann", legacy.LEGACY_PASSWORD, "+32470100007")
    with app.app_context():
        assert db.session.scalar(select(Account.phone_verified).where(Account.username == "ann"))
    # An account made here with an unconfirmed number is still refused: that rule is unchanged.
    make_user("bert", phone="+32470100008")
    with app.app_context():
        bert = db.session.scalar(select(Account).where(Account.username == "bert"))
        bert.phone_verified = False
        db.session.commit()
    resp = post_password(app.test_client(), "/login/-", "bert", PASSWORD)
    assert resp.status_code == 403
