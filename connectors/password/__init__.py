"""The local password check: username + password against the provider's own accounts.

Like Dex's ``PasswordConnector``: the host hands in how to find a stored hash by
username (``lookup``) and how to verify one (``verify``, which must do the same work
for a missing hash as for a wrong password, so unknown users and wrong passwords
cost the same). The connector never touches the database itself. Lockout, throttling
and the second factor are the host's (``idp.login``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from connectors.base import Identity

ISSUER = "urn:idp:local"
AMR = ("pwd",)  # RFC 8176


@dataclass(frozen=True)
class StoredPassword:
    subject: str  # the account's stable identifier at the host
    password_hash: str | None  # None: the account has no password (or is not active)


class LocalPasswordConnector:
    """Check a username and password; see the module docstring."""

    method = "password"

    def __init__(
        self,
        lookup: Callable[[str], StoredPassword | None],
        verify: Callable[[str | None, str], bool],
        *,
        level: str = "substantial",
    ) -> None:
        self.lookup = lookup
        self.verify = verify
        self.level = level

    def login(self, username: str, password: str) -> Identity | None:
        stored = self.lookup(username)
        if not self.verify(stored.password_hash if stored is not None else None, password):
            return None
        return Identity(method=self.method, issuer=ISSUER, subject=stored.subject, level=self.level, amr=AMR)
