"""The login methods' tables: ``[methods.<name>]`` (on or off, the level each reaches, the
operator's message when off) and ``[connectors.<name>]``, each read by its connector's
settings class through the registry (:mod:`connectors.registry`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectors.base import LEVELS
from connectors.config import ConfigTable
from connectors.registry import CONNECTORS
from idp.core.client_settings import LOGIN_METHODS


@dataclass(frozen=True)
class MethodSettings:
    name: str
    enabled: bool
    level: str
    disabled_message: dict[str, str]
    register: bool = False  # may a person unknown to us get a new account through this method?


def read_methods(t: ConfigTable, configured: set[str]) -> dict[str, MethodSettings]:
    methods_table = t.table("methods")
    defaults = {
        "mock": "substantial",
        "password": "substantial",
        "itsme": "high",
        "eid": "high",
        "contract": "low",
        "passkey": "substantial",
    }
    out = {}
    for name in LOGIN_METHODS:
        m = methods_table.table(name)
        enabled = m.bool("enabled", name == "password" or name in configured)
        if enabled and name in ("itsme", "eid", "mock") and name not in configured:
            m.error("enabled", f"the {name} login needs a [connectors.{name}] table")
        if enabled and name == "passkey" and name not in configured:
            m.error("enabled", "passkeys need a provider.issuer with a host name, not an IP address")
        out[name] = MethodSettings(
            name=name,
            enabled=enabled,
            level=m.str("level", defaults[name], choices=LEVELS),
            disabled_message=m.messages("disabled_message"),
            register=m.bool("register", False) if name in ("itsme", "eid") else False,
        )
        m.finish()
    methods_table.finish()
    return out


def is_host_name(url: str | None) -> bool:
    host = urlsplit(url or "").hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(host)
    return False


def read_connectors(root: ConfigTable, production: bool) -> dict[str, Any]:
    """``[connectors.<name>]``: each read by its connector's settings class (the registry)."""
    out = {}
    ctable = root.table("connectors")
    for name in list(ctable.data):
        entry = CONNECTORS.get(name)
        if entry is None or entry.settings is None:
            known = ", ".join(n for n, e in CONNECTORS.items() if e.settings is not None)
            ctable.error(name, f"unknown connector; known: {known}")
            ctable.table(name)
            continue
        if production and entry.development_only:
            ctable.error(name, "is a development connector, refused in production")
        out[name] = entry.settings.from_table(ctable.table(name))
    ctable.finish()
    return out


def check_eid_origin(root: ConfigTable, issuer: str | None, connectors: dict) -> None:
    """The card signs the login page's origin, which is the issuer's: it must be allowed."""
    eid = connectors.get("eid")
    if eid is None or not issuer:
        return
    parts = urlsplit(issuer)
    origin = f"{parts.scheme}://{parts.netloc}"
    if origin not in eid.allowed_origins:
        root.error(
            "connectors.eid.allowed_origins",
            f"must include the provider's own origin {origin!r} (from provider.issuer)",
        )
