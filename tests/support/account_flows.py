"""Helpers for the registration, recovery and activation tests: customers, the outbox, forms."""

from __future__ import annotations

import re

from tests.support.clock import Clock  # noqa: F401 (the flows' tests import it from here)
from tests.support.sms_login import csrf, emails_to, last_code, outbox, sms_to  # noqa: F401 (same)

LINK = re.compile(r"(https?://\S+)")
COLUMNS = (
    "customer_number",
    "card_number",
    "contract_numbers",
    "given_name",
    "family_name",
    "birthdate",
    "email",
    "mobile",
    "national_number",
)
HEADER = ",".join(COLUMNS)

# Luhn-valid card numbers (test numbers of the card schemes).
CARD = "4111 1111 1111 1111"
CARD_2 = "5555 5555 5555 4444"
CARD_3 = "4012 8888 8888 1881"
BIRTHDATE = "1985-07-30"
MOBILE = "+32470123456"
MOBILE_2 = "+32470999888"

# Fast answers in tests; the timing test sets its own floor.
FAST = {"registration": {"recovery": {"response_time_floor_ms": 0}}}


def national_number(birth: str = "850730", serial: str = "033") -> str:
    base = int(birth + serial)
    return f"{birth}{serial}{97 - base % 97:02d}"


def customer_line(
    number="C-1001",
    card=CARD,
    contracts="CT-1001",
    given="Jeanne",
    family="Dupont",
    birthdate=BIRTHDATE,
    email="jeanne@example.org",
    mobile=MOBILE,
    national=None,
) -> str:
    national = national_number() if national is None else national
    return ",".join([number, card, contracts, given, family, birthdate, email, mobile, national])


def load_customers(app, *lines: str) -> None:
    from idp.accounts.customers import import_customers

    with app.app_context():
        import_customers("\n".join([HEADER, *lines]) + "\n")


def all_sms(app) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "sms"]


def all_emails(app) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "email"]


def link_in(message: dict) -> str:
    m = LINK.search(message["text"])
    assert m, message["text"]
    return m.group(1)


def submit(client, path: str, data: dict, get_path: str | None = None):
    """GET the form (for its CSRF token), then POST ``data`` to it."""
    page = client.get(get_path or path)
    assert page.status_code in (200, 400), (page.status_code, page.get_data(as_text=True)[:500])
    return client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True)), **data})


def without_csrf(resp) -> str:
    """The page's HTML without its CSRF token (to compare two answers that must look the same)."""
    body = resp.get_data(as_text=True)
    return body.replace(csrf(body), "") if "csrf_token" in body else body


def path_of(location: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")
