"""Turning itsme's validated claims into an :class:`~connectors.base.Identity`.

Claim names: OIDC Core section 5.1 and itsme's "user data" chapter
(``shared/reference/itsme.md``, "Scopes, claims, assurance"). ``amr`` values
come from RFC 8176 section 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.base import ConnectorError, Identity, valid_national_number

from .settings import ACR_ADVANCED

NATIONAL_NUMBER = "http://itsme.services/v2/claim/BENationalNumber"
CARD_NUMBER = "http://itsme.services/v2/claim/BEeidSn"

# Every itsme login proves possession of the device key held in the phone's
# secure hardware ("hwk") plus the itsme code or a fingerprint, hence "mfa".
# acr_advanced forces the itsme code, so "pin" is known too; with acr_basic
# we cannot tell the code from a fingerprint and claim neither.
AMR_BASIC = ("mfa", "hwk")
AMR_ADVANCED = ("mfa", "hwk", "pin")

_STRING_CLAIMS = (
    "given_name",
    "family_name",
    "name",
    "birthdate",
    "gender",
    "locale",
    "email",
    "phone_number",
)
_ADDRESS_FIELDS = ("formatted", "street_address", "postal_code", "locality", "region", "country")
_CARD = re.compile(r"^[A-Z0-9]{1,32}$")


def build_identity(
    issuer: str, sub: str, acr: str, level: str, id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]
) -> Identity:
    merged = {**id_claims, **userinfo}  # userinfo is the fuller, equally signed source
    claims: dict[str, Any] = {}
    for name in _STRING_CLAIMS:
        value = merged.get(name)
        if isinstance(value, str) and value:
            claims[name] = value
    if "email" in claims:
        claims["email_verified"] = merged.get("email_verified") is True
    if "phone_number" in claims:
        claims["phone_number_verified"] = merged.get("phone_number_verified") is True
    address = merged.get("address")
    if isinstance(address, Mapping):
        fields = {k: v for k, v in address.items() if k in _ADDRESS_FIELDS and isinstance(v, str)}
        if fields:
            claims["address"] = fields

    national_number = merged.get(NATIONAL_NUMBER)
    if national_number is not None and not (
        isinstance(national_number, str) and valid_national_number(national_number)
    ):
        raise ConnectorError("invalid_token", "userinfo: national number is not 11 digits with a valid check")
    card_number = merged.get(CARD_NUMBER)
    if card_number is not None:
        card_number = str(card_number).strip().upper() if isinstance(card_number, (str, int)) else ""
        if not _CARD.match(card_number):
            raise ConnectorError("invalid_token", "userinfo: card number malformed")

    return Identity(
        method="itsme",
        issuer=issuer,
        subject=sub,
        level=level,
        amr=AMR_ADVANCED if acr == ACR_ADVANCED else AMR_BASIC,
        claims=claims,
        national_number=national_number,
        card_number=card_number,
        connector_data={"acr": acr},
    )
