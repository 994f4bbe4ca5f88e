"""Operator actions on the login connectors (``idp keys rotate --connector itsme``).

itsme's key rotation rules ("Our keys" in ``shared/reference/itsme.md``) are
implemented by :meth:`connectors.itsme.RPKeys.rotate`; this module finds the
app's key set, rotates it and leaves an audit record.
"""

from __future__ import annotations

import click
from flask import Flask

from idp.core import audit


def rotate_itsme_keys(app: Flask, *, immediate: bool = False) -> dict:
    """New ``sig`` and ``enc`` keys for itsme; the summary (new kids, retired, removed).

    Other workers sharing ``keys_dir`` pick the new keys up at their next use.
    """
    keys = app.extensions.get("idp.itsme.keys")
    if keys is None:
        raise click.ClickException("itsme is not configured: there is no [connectors.itsme] table")
    summary = {"connector": "itsme", **keys.rotate(immediate=immediate)}
    with app.app_context():
        audit.record(
            "keys.rotate",
            method="itsme",
            sig=summary["sig"],
            enc=summary["enc"],
            retired=summary["retired"],
            removed=summary["removed"],
            immediate=immediate,
        )
    return summary
