"""``idp customers import``: keyed hashes only, idempotent upsert, all-or-nothing with line numbers."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from idp.accounts.customers import CustomerContract, CustomerImportError, import_customers, match_customer
from idp.core.hashing import card_number_hash, national_number_hash
from idp.core.storage import AuditEvent, Customer, db
from tests.support.account_flows import CARD, CARD_2, CARD_3, HEADER, customer_line, national_number


def csv_of(*lines: str) -> str:
    return "\n".join([HEADER, *lines]) + "\n"


def customers(app) -> list[Customer]:
    with app.app_context():
        rows = db.session.scalars(select(Customer).order_by(Customer.customer_number)).all()
        db.session.expunge_all()
        return rows


def test_import_stores_card_and_national_numbers_only_as_keyed_hashes(app):
    with app.app_context():
        result = import_customers(csv_of(customer_line()))
        assert (result.created, result.updated) == (1, 0)
        row = db.session.scalar(select(Customer))
        assert row.card_number_hash == card_number_hash("4111111111111111")
        assert row.card_last4 == "1111"
        assert row.national_number_hash == national_number_hash(national_number())
        assert row.contract_numbers == ["CT-1001"]
        assert row.phone == "+32470123456" and row.birthdate == "1985-07-30"
        # Nothing in the table holds the clear numbers.
        dump = " ".join(str(v) for r in db.session.execute(text("SELECT * FROM customers")) for v in r)
        assert "4111111111111111" not in dump and national_number() not in dump
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.event == "customers_imported")).all()
        assert [e.detail for e in events] == [{"created": 1, "updated": 0}]


def test_import_is_idempotent_and_updates_by_customer_number(app):
    with app.app_context():
        import_customers(
            csv_of(customer_line(), customer_line("C-1002", card=CARD_2, contracts="CT-2", national=""))
        )
        again = import_customers(
            csv_of(customer_line(), customer_line("C-1002", card=CARD_2, contracts="CT-2", national=""))
        )
        assert (again.created, again.updated) == (0, 2)
        changed = import_customers(
            csv_of(
                customer_line(mobile="0470 99 98 88", email="new@example.org", contracts="CT-1001|CT-1003")
            )
        )
        assert (changed.created, changed.updated) == (0, 1)
    rows = customers(app)
    assert [r.customer_number for r in rows] == ["C-1001", "C-1002"]
    assert rows[0].phone == "+32470999888" and rows[0].email == "new@example.org"
    assert rows[0].contract_numbers == ["CT-1001", "CT-1003"]
    with app.app_context():
        assert db.session.get(CustomerContract, "CT-1003").customer_id == rows[0].id


def test_a_bad_file_changes_nothing_and_names_every_bad_line(app):
    with app.app_context():
        import_customers(csv_of(customer_line(given="Jeanne")))
        bad = csv_of(
            customer_line(given="Changed"),  # line 2: fine on its own
            customer_line("C-2", card="4111 1111 1111 1112", contracts="CT-2", national=""),  # line 3
            customer_line(
                "C-3", card=CARD_3, contracts="CT-3", birthdate="30/07/1985", national=""
            ),  # line 4
        )
        with pytest.raises(CustomerImportError) as info:
            import_customers(bad)
    lines = [line for line, _ in info.value.problems]
    assert lines == [3, 4]
    assert "card_number" in info.value.problems[0][1] and "birthdate" in info.value.problems[1][1]
    rows = customers(app)
    assert [(r.customer_number, r.given_name) for r in rows] == [("C-1001", "Jeanne")]


@pytest.mark.parametrize(
    ("changes", "column"),
    [
        ({"number": ""}, "customer_number"),
        ({"number": "C 1"}, "customer_number"),
        ({"card": "1234"}, "card_number"),
        ({"card": "4111-1111-1111-111x"}, "card_number"),
        ({"contracts": "CT 1|ab$"}, "contract_numbers"),
        ({"birthdate": "1985-02-30"}, "birthdate"),
        ({"birthdate": "2999-01-01"}, "birthdate"),
        ({"email": "not-an-address"}, "email"),
        ({"mobile": "12"}, "mobile"),
        ({"mobile": "+32 2 123 45 67"}, "mobile"),  # a Brussels fixed line cannot receive SMS
        ({"national": "85073003300"}, "national_number"),
        ({"national": "8507300331"}, "national_number"),
    ],
)
def test_bad_values_are_refused_with_line_and_column(app, changes, column):
    with app.app_context(), pytest.raises(CustomerImportError) as info:
        import_customers(csv_of(customer_line(**changes)))
    [(line, message)] = info.value.problems
    assert line == 2 and message.startswith(column), message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        (HEADER + "\n", "no customers"),
        ("customer_number,card_number\nC-1,4111111111111111\n", "missing"),
        (HEADER + ",pin\n", "unknown: pin"),
        (HEADER + "\n" + "C-1,4111111111111111\n", "expected 9 fields"),
    ],
)
def test_bad_structure_is_refused(app, content, expected):
    with app.app_context(), pytest.raises(CustomerImportError) as info:
        import_customers(content)
    assert any(expected in m for _, m in info.value.problems), info.value.problems


def test_duplicates_inside_the_file_are_refused(app):
    with app.app_context(), pytest.raises(CustomerImportError) as info:
        import_customers(
            csv_of(
                customer_line(),
                customer_line("C-1001", card=CARD_2, contracts="CT-9", national=""),
                customer_line("C-3", card=CARD, contracts="CT-1001", national=national_number()),
            )
        )
    messages = [(line, m.split(":")[0]) for line, m in info.value.problems]
    assert (3, "customer_number") in messages
    assert (4, "card_number") in messages and (4, "national_number") in messages
    assert (4, "contract number") in messages


def test_numbers_held_by_another_customer_in_the_database_are_refused(app):
    with app.app_context():
        import_customers(csv_of(customer_line()))
        with pytest.raises(CustomerImportError) as info:
            import_customers(csv_of(customer_line("C-2", card=CARD_2, contracts="CT-1001")))
    reasons = " ".join(m for _, m in info.value.problems)
    assert "national_number: already held by customer C-1001" in reasons
    assert "CT-1001: held by customer C-1001" in reasons


def test_contracts_and_national_numbers_can_move_between_customers_of_one_file(app):
    with app.app_context():
        import_customers(
            csv_of(customer_line(), customer_line("C-2", card=CARD_2, contracts="CT-2", national=""))
        )
        import_customers(
            csv_of(
                customer_line(contracts="CT-2", national=""),
                customer_line("C-2", card=CARD_2, contracts="CT-1001", national=national_number()),
            )
        )
        assert db.session.get(CustomerContract, "CT-1001").customer_id == db.session.scalar(
            select(Customer.id).where(Customer.customer_number == "C-2")
        )


def test_match_customer_needs_card_and_birthdate(app):
    with app.app_context():
        import_customers(csv_of(customer_line()))
        assert match_customer("4111-1111-1111-1111", dt.date(1985, 7, 30)).customer_number == "C-1001"
        assert match_customer(CARD, dt.date(1985, 7, 31)) is None
        assert match_customer(CARD_2, dt.date(1985, 7, 30)) is None
        assert match_customer("garbage", dt.date(1985, 7, 30)) is None


def test_cli_imports_and_reports_problems_with_file_and_line(app, tmp_path):
    good = tmp_path / "customers.csv"
    good.write_text("\ufeff" + csv_of(customer_line()), encoding="utf-8")  # Excel's BOM is fine
    runner = app.test_cli_runner()
    result = runner.invoke(args=["customers", "import", str(good)])
    assert result.exit_code == 0, result.output
    assert "1 new, 0 updated" in result.output

    bad = tmp_path / "bad.csv"
    bad.write_text(csv_of(customer_line("C-9", card="1234", contracts="CT-9", national="")), encoding="utf-8")
    result = runner.invoke(args=["customers", "import", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:2: card_number" in result.output and "nothing was imported" in result.output
    assert [r.customer_number for r in customers(app)] == ["C-1001"]


def test_cli_reads_semicolon_files(app, tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(csv_of(customer_line()).replace(",", ";"), encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["customers", "import", "--delimiter", ";", str(path)])
    assert result.exit_code == 0, result.output
