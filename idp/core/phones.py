"""Mobile numbers: parsing to E.164 (ITU-T E.164) and masking for display and logs.

Numbers are parsed with ``phonenumbers`` (libphonenumber metadata). A number
that receives the SMS second factor must be valid, from an allowed country
and, where the numbering plan tells, a mobile number: fixed lines, premium
rate, toll-free and similar ranges cannot receive SMS (and premium ranges are
the target of SMS pumping). Numbers whose type the metadata cannot tell apart
(``FIXED_LINE_OR_MOBILE``, as in the US) are accepted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# What people type: digits, a leading +, spaces and the usual separators.
# Letters ("vanity numbers") and extensions are refused rather than guessed at.
_TYPED = re.compile(r"^\+?[0-9 ().\-/]+$")
MAX_INPUT = 40

SMS_CAPABLE = frozenset(
    {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.UNKNOWN}
)

VISIBLE_DIGITS = 3


class PhoneError(ValueError):
    """``code``: ``invalid``, ``not_mobile`` or ``country_not_allowed``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def normalize_phone(
    raw: str, *, default_region: str = "BE", allowed_prefixes: Sequence[str] = ("+32",)
) -> str:
    """``raw`` as an E.164 string (``+32470123456``), or :class:`PhoneError`.

    National numbers are read in ``default_region``; ``00`` and ``+``
    international forms are understood. An empty ``allowed_prefixes`` allows
    every country.
    """
    text = raw.strip()
    if not text or len(text) > MAX_INPUT or not _TYPED.match(text):
        raise PhoneError("invalid")
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        raise PhoneError("invalid") from None
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid")
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    if allowed_prefixes and not any(e164.startswith(p) for p in allowed_prefixes):
        raise PhoneError("country_not_allowed")
    if phonenumbers.number_type(number) not in SMS_CAPABLE:
        raise PhoneError("not_mobile")
    return e164


def mask_phone(e164: str) -> str:
    """The number with all but its last three digits hidden: ``+32 ******456``.

    The country code stays visible so the user recognises which phone; safe
    for logs too. Input that is not E.164 is masked all the same.
    """
    digits = "".join(c for c in e164 if c.isdigit())
    try:
        number = phonenumbers.parse(e164, None)
        country = f"+{number.country_code} "
        national = digits[len(str(number.country_code)) :]
    except phonenumbers.NumberParseException:
        country, national = "", digits
    hidden = max(len(national) - VISIBLE_DIGITS, 3 if not country else 0)
    return country + "*" * hidden + national[-VISIBLE_DIGITS:] if national else "***"
