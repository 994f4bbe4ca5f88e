"""One registry maps a configuration name to its connector, and each connector keeps the
contract of its kind (connectors/base.py)."""

from __future__ import annotations

import pytest

from connectors.base import ChallengeConnector, PasswordConnector, RedirectConnector
from connectors.registry import CONNECTORS

CONTRACTS = {"redirect": RedirectConnector, "challenge": ChallengeConnector, "password": PasswordConnector}


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_every_registered_connector_has_the_methods_of_its_kind(name):
    entry = CONNECTORS[name]
    contract = CONTRACTS[entry.kind]
    wanted = {m for m in vars(contract) if not m.startswith("_")} - {"method"}
    assert wanted and all(callable(getattr(entry.connector, m, None)) for m in wanted), (name, wanted)


def test_only_the_mock_connector_is_for_development_only():
    assert [n for n, e in CONNECTORS.items() if e.development_only] == ["mock"]
