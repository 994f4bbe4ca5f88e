"""The National Register's signed identity and address files on a Belgian eID card.

Format per the eID middleware (``Fedict/eid-mw``: ``doc/sdk/documentation``,
"ID_ADRESSE_File" and ``plugins_tools/eid-viewer/verify.c``): each file is a
sequence of TLV records (1-byte tag; length bytes where each ``0xFF`` adds 255
and the first byte below ``0xFF`` ends the length; value), optionally followed
by zero padding. ``SIGN_DATA_FILE`` is the National Register (RRN) key's
signature over the raw ``DATA_FILE``; ``SIGN_ADDRESS_FILE`` signs
``ADDRESS_FILE`` with trailing ``0x00`` bytes removed, followed by the whole
``SIGN_DATA_FILE``. On EC cards the DER signatures are zero-padded to a fixed
length and must be trimmed to their encoded length.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

# Identity file tags (DATA_FILE)
TAG_CARD_NUMBER = 1
TAG_VALIDITY_BEGIN = 3
TAG_VALIDITY_END = 4
TAG_NATIONAL_NUMBER = 6
TAG_SURNAME = 7
TAG_FIRSTNAMES = 8
TAG_DATE_OF_BIRTH = 12
TAG_PHOTO_HASH = 17
# Address file tags (ADDRESS_FILE)
TAG_STREET = 1
TAG_ZIP = 2
TAG_MUNICIPALITY = 3

# Month abbreviations the card uses in the date of birth, in Dutch, French and German.
_MONTHS = {
    "JAN": 1, "JANV": 1, "FEB": 2, "FEV": 2, "FÉV": 2, "MAAR": 3, "MARS": 3, "MÄR": 3, "MAR": 3,
    "APR": 4, "AVR": 4, "MEI": 5, "MAI": 5, "JUN": 6, "JUIN": 6, "JUL": 7, "JUIL": 7,
    "AUG": 8, "AOUT": 8, "AOÛ": 8, "AOÛT": 8, "SEP": 9, "SEPT": 9, "OKT": 10, "OCT": 10,
    "NOV": 11, "DEC": 12, "DÉC": 12, "DEZ": 12,
}  # fmt: skip
_BIRTH = re.compile(r"^\s*(?:(\d{1,2})[\s.]+([^\s\d.]+)\.?[\s.]+)?(\d{4})\s*$")
_CARD_DATE = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})$")


class IdentityFileError(ValueError):
    """An identity or address file is malformed or its signature does not verify."""


def parse_tlv(data: bytes) -> dict[int, bytes]:
    """Records of one card file by tag; raises IdentityFileError when truncated."""
    fields: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        if not any(data[i:]):
            break  # zero padding up to the file size
        tag = data[i]
        i += 1
        length = 0
        while True:
            if i >= len(data):
                raise IdentityFileError("truncated length")
            byte = data[i]
            i += 1
            length += byte
            if byte != 0xFF:
                break
        if i + length > len(data):
            raise IdentityFileError(f"record {tag} runs past the end of the file")
        fields.setdefault(tag, data[i : i + length])
        i += length
    return fields


def trim_der_signature(signature: bytes) -> bytes:
    """Cut a zero-padded DER ``SEQUENCE`` signature to its encoded length (EC cards)."""
    if len(signature) < 2 or signature[0] != 0x30:
        return signature
    first = signature[1]
    if first < 0x80:
        end = 2 + first
    else:
        n = first & 0x7F
        if n == 0 or n > 2 or len(signature) < 2 + n:
            return signature
        end = 2 + n + int.from_bytes(signature[2 : 2 + n], "big")
    return signature[:end] if end <= len(signature) else signature


def _verify(public_key: object, signature: bytes, data: bytes) -> None:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        alg = {256: hashes.SHA256, 384: hashes.SHA384, 521: hashes.SHA512}.get(public_key.curve.key_size)
        if alg is None:
            raise IdentityFileError("unsupported National Register curve")
        try:
            public_key.verify(trim_der_signature(signature), data, ec.ECDSA(alg()))
            return
        except (InvalidSignature, ValueError) as exc:
            raise IdentityFileError("National Register signature does not verify") from exc
    if isinstance(public_key, rsa.RSAPublicKey):
        # Cards up to applet 1.7 carry RSA PKCS#1 v1.5 signatures; older ones use SHA-1.
        for alg in (hashes.SHA256, hashes.SHA1):
            try:
                public_key.verify(signature, data, padding.PKCS1v15(), alg())
                return
            except InvalidSignature:
                continue
        raise IdentityFileError("National Register signature does not verify")
    raise IdentityFileError("unsupported National Register key type")


def verify_identity_signatures(
    rrn_public_key: object,
    data_file: bytes,
    data_signature: bytes,
    address_file: bytes,
    address_signature: bytes,
) -> None:
    """Check the RRN signatures over DATA_FILE and over ADDRESS_FILE (+ SIGN_DATA_FILE)."""
    _verify(rrn_public_key, data_signature, data_file)
    _verify(rrn_public_key, address_signature, address_file.rstrip(b"\x00") + data_signature)


def _text(fields: dict[int, bytes], tag: int) -> str:
    try:
        return fields.get(tag, b"").decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise IdentityFileError(f"record {tag} is not UTF-8") from exc


def parse_birthdate(text: str) -> str | None:
    """The card's localised ``DD MMM YYYY`` as an OIDC ``birthdate`` (``YYYY-MM-DD`` or ``YYYY``)."""
    m = _BIRTH.match(text.upper())
    if not m:
        return None
    day, month, year = m.groups()
    if day is None:
        return year
    number = _MONTHS.get(month.rstrip("."))
    if number is None:
        return None
    try:
        return dt.date(int(year), number, int(day)).isoformat()
    except ValueError:
        return year


def parse_card_date(text: str) -> str | None:
    m = _CARD_DATE.match(text)
    if not m:
        return None
    day, month, year = (int(x) for x in m.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


@dataclass(frozen=True)
class CardIdentity:
    """What the National Register signed about the card holder."""

    national_number: str
    card_number: str
    surname: str
    firstnames: str
    birthdate: str | None
    validity_begin: str | None
    validity_end: str | None
    street_address: str
    postal_code: str
    locality: str

    def __repr__(self) -> str:  # never print the national number
        return "CardIdentity(...)"


def parse_identity(data_file: bytes, address_file: bytes) -> CardIdentity:
    ident = parse_tlv(data_file)
    addr = parse_tlv(address_file)
    national_number = _text(ident, TAG_NATIONAL_NUMBER)
    if not re.fullmatch(r"\d{11}", national_number):
        raise IdentityFileError("identity file has no valid national number")
    card_number = _text(ident, TAG_CARD_NUMBER)
    if not card_number:
        raise IdentityFileError("identity file has no card number")
    return CardIdentity(
        national_number=national_number,
        card_number=card_number,
        surname=_text(ident, TAG_SURNAME),
        firstnames=_text(ident, TAG_FIRSTNAMES),
        birthdate=parse_birthdate(_text(ident, TAG_DATE_OF_BIRTH)),
        validity_begin=parse_card_date(_text(ident, TAG_VALIDITY_BEGIN)),
        validity_end=parse_card_date(_text(ident, TAG_VALIDITY_END)),
        street_address=_text(addr, TAG_STREET),
        postal_code=_text(addr, TAG_ZIP),
        locality=_text(addr, TAG_MUNICIPALITY),
    )


def encode_tlv(fields: list[tuple[int, bytes]]) -> bytes:
    """The inverse of :func:`parse_tlv` (tests build card files with it)."""
    out = bytearray()
    for tag, value in fields:
        out.append(tag)
        n = len(value)
        while n >= 0xFF:
            out.append(0xFF)
            n -= 0xFF
        out.append(n)
        out += value
    return bytes(out)
