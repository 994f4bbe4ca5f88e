"""Mobile number parsing and masking (idp.phones)."""

from __future__ import annotations

import pytest

from idp.core.phones import PhoneError, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0470 12 34 56", "+32470123456"),
        ("0470/12.34.56", "+32470123456"),
        ("+32 470 12 34 56", "+32470123456"),
        ("0032 470 12 34 56", "+32470123456"),
        ("  +32470123456  ", "+32470123456"),
        ("(0470) 12-34-56", "+32470123456"),
        ("0450 00 12 34", "+32450001234"),
    ],
)
def test_belgian_mobile_numbers_become_e164(raw, e164):
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "invalid"),
        ("   ", "invalid"),
        ("hello", "invalid"),
        ("0470 ABC DEF", "invalid"),
        ("0470 12 34 56 ext. 12", "invalid"),
        ("+32 470", "invalid"),
        ("0470 12 34 56 78 90", "invalid"),
        ("+32 2 123 45 67", "invalid"),  # one digit short for Brussels
        ("+" + "1" * 60, "invalid"),
        ("tel:+32470123456", "invalid"),
        ("012 34 56 78", "not_mobile"),  # Liège fixed line
        ("0800 12 345", "not_mobile"),  # toll-free
        ("0900 12 345", "not_mobile"),  # premium rate: a pumping target
        ("078 10 23 45", "not_mobile"),  # national rate (UAN)
        ("+33 6 12 34 56 78", "country_not_allowed"),
        ("+31 6 12345678", "country_not_allowed"),
        ("+33 1 23 45 67 89", "country_not_allowed"),  # country is checked before type
    ],
)
def test_bad_numbers_are_refused_with_a_code(raw, code):
    with pytest.raises(PhoneError) as info:
        normalize_phone(raw)
    assert info.value.code == code


def test_allowed_prefixes_open_other_countries():
    prefixes = ("+32", "+33", "+352")
    assert normalize_phone("+33 6 12 34 56 78", allowed_prefixes=prefixes) == "+33612345678"
    with pytest.raises(PhoneError, match="country_not_allowed"):
        normalize_phone("+31 6 12345678", allowed_prefixes=prefixes)


def test_empty_allowed_prefixes_allow_every_country():
    assert normalize_phone("+44 7911 123456", allowed_prefixes=()) == "+447911123456"


def test_national_numbers_are_read_in_the_default_region():
    assert normalize_phone("06 12 34 56 78", default_region="FR", allowed_prefixes=("+33",)) == "+33612345678"


def test_fixed_line_or_mobile_numbers_are_accepted():
    # North American numbers do not say whether they are mobile.
    assert normalize_phone("+1 650 253 0000", allowed_prefixes=("+1",)) == "+16502530000"


def test_phone_error_is_a_value_error_with_its_code():
    error = PhoneError("invalid")
    assert isinstance(error, ValueError) and error.code == "invalid" and str(error) == "invalid"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+32470123456", "+32 ******456"),
        ("+33612345678", "+33 ******678"),
        ("+447911123456", "+44 *******456"),
        ("+16502530000", "+1 *******000"),
        ("0470123456", "*******456"),
        ("12", "***12"),
        ("", "***"),
    ],
)
def test_mask_shows_country_and_last_three_digits(e164, masked):
    assert mask_phone(e164) == masked
