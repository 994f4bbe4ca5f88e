"""A login method for development and tests, like Dex's mock connector: it logs in the one
person its table names, without any upstream, through the same redirect-and-callback
contract as itsme (:class:`connectors.base.RedirectConnector`). The provider refuses it in
production.

    [connectors.mock]
    subject = "dev-1"
    given_name = "Dana"
    family_name = "Developer"
    level = "substantial"
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from connectors.base import LEVELS, ConnectorError, Identity, level_rank
from connectors.config import ConfigTable

ISSUER = "urn:idp:mock"
TRANSACTION_MAX_AGE = 600


@dataclass(frozen=True)
class MockSettings:
    subject: str
    given_name: str
    family_name: str
    level: str

    @classmethod
    def from_table(cls, t: ConfigTable) -> MockSettings:
        out = cls(
            subject=t.str("subject", "dev-1"),
            given_name=t.str("given_name", "Dana"),
            family_name=t.str("family_name", "Developer"),
            level=t.str("level", "substantial", choices=LEVELS),
        )
        if not out.subject:
            t.error("subject", "must not be empty")
        t.finish()
        return out


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


class MockConnector:
    """Answers every login at once with the configured person; see the module docstring."""

    method = "mock"

    def __init__(
        self, settings: MockSettings, redirect_uri: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self.clock = clock

    def begin(self, *, level: str, locale: str = "fr", login_hint: str | None = None) -> tuple[str, dict]:
        if level_rank(level) > level_rank(self.settings.level):
            raise ConnectorError("insufficient_level", f"the mock person is {self.settings.level}")
        transaction = {
            "state": secrets.token_urlsafe(32),
            "code": secrets.token_urlsafe(16),
            "created_at": self.clock(),
            "level": level,
        }
        query = urlencode({"state": transaction["state"], "code": transaction["code"]})
        return f"{self.redirect_uri}?{query}", transaction

    def complete(self, params: Mapping[str, str], transaction: dict | None) -> Identity:
        if transaction is None or not _same(params.get("state"), transaction.get("state")):
            raise ConnectorError("invalid_state", "no mock login of this browser has that state")
        if self.clock() - transaction["created_at"] > TRANSACTION_MAX_AGE:
            raise ConnectorError("invalid_state", "the mock login expired")
        if params.get("error"):
            raise ConnectorError("cancelled")
        if not _same(params.get("code"), transaction.get("code")):
            raise ConnectorError("invalid_token", "the mock code does not match")
        s = self.settings
        return Identity(
            method=self.method,
            issuer=ISSUER,
            subject=s.subject,
            level=s.level,
            amr=("mock",),
            claims={"given_name": s.given_name, "family_name": s.family_name},
        )
