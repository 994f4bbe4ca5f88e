"""The strict TOML table reader shared by the provider and the connectors (connectors.base.ConfigTable)."""

from __future__ import annotations

import pytest

from connectors.config import ConfigTable


def read_float(data: dict, **bounds):
    t = ConfigTable(data, "idp.toml", "sms.http")
    value = t.float("timeout", 5.0, **bounds)
    t.finish()
    return value, [str(e) for e in t.errors]


@pytest.mark.parametrize(
    ("data", "expected"),
    [({}, 5.0), ({"timeout": 2}, 2.0), ({"timeout": 2.5}, 2.5), ({"timeout": 60}, 60.0)],
)
def test_float_reads_integers_and_decimals_as_floats(data, expected):
    value, errors = read_float(data, min=0.1, max=60)
    assert (value, errors) == (expected, [])
    assert isinstance(value, float)


@pytest.mark.parametrize(
    ("value", "bounds", "reason"),
    [
        (0, {"min": 0.1, "max": 60}, "must be between 0.1 and 60"),
        (61, {"min": 0.1, "max": 60}, "must be between 0.1 and 60"),
        (-1, {"min": 0}, "must be at least 0"),
        (31, {"max": 30}, "must be at most 30"),
        ("5s", {}, "must be a number"),
        (True, {}, "must be a number, not a boolean"),
    ],
)
def test_float_refuses_bad_values_and_gives_the_default(value, bounds, reason):
    assert read_float({"timeout": value}, **bounds) == (5.0, [f"idp.toml: sms.http.timeout: {reason}"])


def test_a_required_float_is_reported_when_missing():
    t = ConfigTable({}, "idp.toml")
    assert t.float("timeout") is None
    assert [str(e) for e in t.errors] == ["idp.toml: timeout: is required"]
