"""The one table that maps a configuration name to its connector.

``[connectors.<name>]`` in the provider file is read by ``settings.from_table``; the
host opens ``connector`` with those settings and what the connector needs from it
(an HTTP session, a clock, key material). A ``development_only`` connector is refused in
production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connectors.eid import EidSettings, EidVerifier
from connectors.itsme import ItsmeConnector, ItsmeSettings
from connectors.mock import MockConnector, MockSettings
from connectors.password import LocalPasswordConnector


@dataclass(frozen=True)
class Registration:
    kind: str  # "redirect" | "challenge" | "password" (the protocols of connectors.base)
    connector: type
    settings: Any = None  # a class with from_table(ConfigTable); None: nothing to configure
    development_only: bool = False  # refused when the provider runs in production


CONNECTORS: dict[str, Registration] = {
    "itsme": Registration("redirect", ItsmeConnector, ItsmeSettings),
    "eid": Registration("challenge", EidVerifier, EidSettings),
    "password": Registration("password", LocalPasswordConnector),
    "mock": Registration("redirect", MockConnector, MockSettings, development_only=True),
}
