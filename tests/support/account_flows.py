"""Helpers for the registration, recovery and activation tests: customers, the outbox, forms."""

from __future__ import annotations

import re

from idp.outbox import Outbox

CODE = re.compile(r"\b(\d{6})\b")
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


class Clock:
    def __init__(self, t: float = 1_900_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


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
    from idp.customers import import_customers

    with app.app_context():
        import_customers("\n".join([HEADER, *lines]) + "\n")


def outbox(app) -> Outbox:
    return Outbox(app.extensions["idp.settings"].sms.outbox)


def sms_to(app, number: str = MOBILE) -> list[str]:
    return [m["text"] for m in outbox(app).read() if m["channel"] == "sms" and m["to"] == number]


def all_sms(app) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "sms"]


def last_code(app, number: str = MOBILE) -> str:
    texts = sms_to(app, number)
    assert texts, f"no SMS to {number}"
    return CODE.search(texts[-1]).group(1)


def emails_to(app, address: str) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "email" and m["to"] == address]


def all_emails(app) -> list[dict]:
    return [m for m in outbox(app).read() if m["channel"] == "email"]


def link_in(message: dict) -> str:
    m = LINK.search(message["text"])
    assert m, message["text"]
    return m.group(1)


def csrf(html: str) -> str:
    m = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html) or re.search(
        r'value="([^"]+)"[^>]*name="csrf_token"', html
    )
    assert m, "no CSRF token on the page"
    return m.group(1)


def submit(client, path: str, data: dict, get_path: str | None = None):
    """GET the form (for its CSRF token), then POST ``data`` to it."""
    page = client.get(get_path or path)
    assert page.status_code in (200, 400), (page.status_code, page.get_data(as_text=True)[:500])
    return client.post(path, data={"csrf_token": csrf(page.get_data(as_text=True)), **data})


def path_of(location: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")
