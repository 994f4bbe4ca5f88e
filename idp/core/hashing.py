"""Keyed hashes for identifiers we must find but never store: national register
numbers and card numbers (HMAC-SHA256 with a key derived from the provider's
secret key). The same input always gives the same hash, so lookups work; a
stolen database alone does not reveal the numbers.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import current_app


def _key(purpose: str) -> bytes:
    secret = current_app.extensions["idp.settings"].secret_key.encode()
    return hmac.new(secret, b"idp-identifier-hash:" + purpose.encode(), hashlib.sha256).digest()


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isalnum()).upper()


def national_number_hash(value: str) -> str:
    return hmac.new(_key("national-number"), _digits(value).encode(), hashlib.sha256).hexdigest()


def card_number_hash(value: str) -> str:
    return hmac.new(_key("card-number"), _digits(value).encode(), hashlib.sha256).hexdigest()
