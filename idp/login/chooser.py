"""The method chooser: which login methods a transaction may use, switched-off methods
with the operator's message, and the unrestricted alternatives (itsme, eID) offered
beside the SMS code.
"""

from __future__ import annotations

from flask import current_app, url_for

from connectors.base import level_rank
from idp.core.i18n import localized

METHOD_ENDPOINTS = {
    "password": "login.password",
    "itsme": "itsme.start",
    "eid": "eid.start",
    "contract": "contract.start",
    "passkey": "passkey.start",
    "mock": "mock.start",
}


ALTERNATIVES = ("itsme", "eid")  # unrestricted authenticators offered beside the SMS code


def method_choices(tx: dict | None) -> list[dict]:
    """Each method the client allows: usable, or switched off with the operator's message."""
    settings = current_app.extensions["idp.settings"]
    allowed = tx["methods"] if tx else [m for m in settings.methods if settings.methods[m].enabled]
    required = tx["required_level"] if tx else "low"
    client = current_app.extensions["idp.clients"].get(tx["client_id"]) if tx else None
    out = []
    for name in allowed:
        m = settings.methods[name]
        messages = m.disabled_message or (client.settings.disabled_methods_message if client else {})
        if not m.enabled:
            if messages and name != "passkey":  # the operator's message is about the other methods
                out.append({"name": name, "enabled": False, "message": localized(messages)})
            continue
        level = settings.method_level(name, client.settings if client else None)
        if level_rank(level) < level_rank(required):
            continue
        if METHOD_ENDPOINTS.get(name) not in current_app.view_functions:
            continue
        out.append({"name": name, "enabled": True, "message": None})
    return out


def other_methods(tx: dict | None, tx_id: str, exclude: str) -> list[dict]:
    """The usable methods of this transaction other than ``exclude``, with their links: the way
    forward on the page of a method the operator switched off."""
    return [
        {"name": c["name"], "url": url_for(METHOD_ENDPOINTS[c["name"]], tx_id=tx_id)}
        for c in method_choices(tx)
        if c["enabled"] and c["name"] != exclude
    ]


def alternatives(tx: dict | None, tx_id: str) -> list[dict]:
    """itsme / eID links of this transaction: always offered beside the SMS code."""
    return [
        {"name": c["name"], "url": url_for(METHOD_ENDPOINTS[c["name"]], tx_id=tx_id)}
        for c in method_choices(tx)
        if c["enabled"] and c["name"] in ALTERNATIVES
    ]
