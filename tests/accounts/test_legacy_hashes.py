"""Hashes exported by older systems: recognised and checked at import, verified at login, then re-hashed.

Vectors come from the formats' own specifications or from independent
implementations (libpass, hashlib, argon2-cffi), never from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json

import argon2
import bcrypt
import pytest
from passlib import hash as ph

from idp.accounts import legacy_hashes
from idp.accounts.legacy_hashes import HashFormatError, parse
from idp.accounts.passwords import Passwords, PasswordSettings

PASSWORD = "lètmein Ünïcode"
FAST = PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1)
WEAK_OK = PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1, allow_weak_legacy_hashes=True)

# Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512", test vectors of the specification.
SHA_CRYPT_SPEC = [
    ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
    ("Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    (
        "Hello world!",
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    ),
    (
        "Hello world!",
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/"
        "UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    ),
]


def keycloak_credential(
    password: str, algorithm: str = "pbkdf2-sha256", iterations: int = 1000, key_bytes: int = 64
) -> dict:
    """Keycloak's realm export of a password credential (secretData/credentialData as JSON strings);
    Keycloak derives 512-bit keys by default."""
    digest = {"pbkdf2": "sha1", "pbkdf2-sha256": "sha256", "pbkdf2-sha512": "sha512"}[algorithm]
    salt = b"\x01\x02keycloak-salt"
    value = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations, key_bytes)
    return {
        "type": "password",
        "secretData": json.dumps({"value": b64(value), "salt": b64(salt)}),
        "credentialData": json.dumps({"hashIterations": iterations, "algorithm": algorithm}),
    }


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def django_scrypt(password: str, n: int = 1024, r: int = 8, p: int = 1) -> str:
    # Django's ScryptPasswordHasher layout: scrypt$N$salt$r$p$base64(64-byte key).
    salt = "djangosalt123"
    key = hashlib.scrypt(password.encode(), salt=salt.encode(), n=n, r=r, p=p, dklen=64)
    return f"scrypt${n}${salt}${r}${p}${base64.b64encode(key).decode()}"


def exported(password: str) -> dict[str, str | dict]:
    """One hash of ``password`` in each format, made by an independent implementation."""
    b = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return {
        "bcrypt-2b": b,
        "bcrypt-2a": "$2a$" + b[4:],
        "bcrypt-2y": "$2y$" + b[4:],
        "django-pbkdf2": ph.django_pbkdf2_sha256.using(rounds=1000).hash(password),
        "django-pbkdf2-sha1": ph.django_pbkdf2_sha1.using(rounds=1000).hash(password),
        "pbkdf2-sha256": ph.pbkdf2_sha256.using(rounds=1000).hash(password),
        "pbkdf2-sha512": ph.pbkdf2_sha512.using(rounds=1000).hash(password),
        "keycloak": keycloak_credential(password),
        "keycloak-sha512": keycloak_credential(password, "pbkdf2-sha512"),
        "argon2id": argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password),
        "argon2i": argon2.PasswordHasher(1, 1024, 1, type=argon2.Type.I).hash(password),
        "scrypt": ph.scrypt.using(rounds=10).hash(password),
        "django-scrypt": django_scrypt(password),
        "sha256-crypt": ph.sha256_crypt.using(rounds=1000).hash(password),
        "sha512-crypt": ph.sha512_crypt.using(rounds=1000).hash(password),
    }


WEAK = {
    "ssha": lambda pw: ph.ldap_salted_sha1.hash(pw),
    "ssha256": lambda pw: ph.ldap_salted_sha256.hash(pw),
    "ssha512": lambda pw: ph.ldap_salted_sha512.hash(pw),
}


@pytest.fixture(scope="module")
def hashes():
    return exported(PASSWORD)


@pytest.mark.parametrize("name", list(exported("x")))
def test_each_exported_format_verifies_the_right_password_only_and_needs_rehash(hashes, name):
    passwords = Passwords(FAST)
    stored = parse(hashes[name]).stored
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, PASSWORD + "!")
    assert not passwords.verify(stored, "")
    if name != "argon2id":  # argon2id with this provider's own parameters would not
        assert passwords.needs_rehash(stored)


@pytest.mark.parametrize(("password", "stored"), SHA_CRYPT_SPEC)
def test_sha_crypt_matches_the_specification_vectors(password, stored):
    assert parse(stored).scheme == "sha-crypt"
    assert Passwords(FAST).verify(stored, password)
    assert not Passwords(FAST).verify(stored, "Hello world")


def test_keycloak_credential_is_stored_as_the_equivalent_modular_pbkdf2_string():
    credential = keycloak_credential(PASSWORD, key_bytes=32)  # libpass only reads 32-byte keys
    stored = parse(credential).stored
    assert stored.startswith("$pbkdf2-sha256$1000$")
    # The same credential as one JSON text (a CSV cell) gives the same string.
    assert parse(json.dumps(credential)).stored == stored
    # libpass, independently, agrees that this modular string is the same hash.
    assert ph.pbkdf2_sha256.verify(PASSWORD, stored)


@pytest.mark.parametrize("name", list(WEAK))
def test_salted_sha_needs_the_explicit_setting(name):
    stored = WEAK[name](PASSWORD)
    with pytest.raises(HashFormatError, match="allow_weak_legacy_hashes"):
        parse(stored)
    parsed = parse(stored, allow_weak=True)
    assert parsed.weak and parsed.scheme == "salted-sha"
    assert Passwords(WEAK_OK).verify(stored, PASSWORD)
    assert not Passwords(WEAK_OK).verify(stored, PASSWORD + "!")
    # Switched off again: such a hash no longer opens the account.
    assert not Passwords(FAST).verify(stored, PASSWORD)


def test_strong_formats_are_not_flagged_weak(hashes):
    assert not any(parse(h).weak for h in hashes.values())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "required"),
        ("plain-text-password", "not a recognised password hash format"),
        ("md5$abc$def", "not a recognised password hash format"),
        ("$2b$04$tooshort", "not a well-formed bcrypt hash"),
        ("$2b$31$" + "a" * 53, "bcrypt cost must be 4 to 16"),
        ("$argon2id$v=19$m=not,t=1,p=1$c2FsdA$aGFzaA", "not a well-formed Argon2 hash"),
        ("$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "beyond the limits"),
        ("pbkdf2_sha256$99999999999$salt$aGFzaA==", "iterations must be 1 to"),
        ("pbkdf2_sha256$1000$salt$not base64!", "not a well-formed django-pbkdf2 hash"),
        ("$pbkdf2-md5$1000$c2FsdA$aGFzaA", "unknown PBKDF2 variant"),
        ("$scrypt$ln=30,r=8,p=1$c2FsdA$aGFzaA", "more memory than this provider allows"),
        ("$scrypt$ln=4,r=8$c2FsdA$aGFzaA", "not a well-formed scrypt hash"),
        ("scrypt$1000$salt$8$1$aGFzaA==", "N a power of 2"),
        ("$6$salt$short", "not a well-formed SHA-crypt hash"),
        ("$6$rounds=999999999$salt$" + "a" * 86, "rounds must be 1000 to"),
        ('{"secretData": "{}", "credentialData": "{}"}', "not a Keycloak password credential"),
    ],
)
def test_bad_hashes_are_refused_with_a_reason_that_never_repeats_them(value, reason):
    with pytest.raises(HashFormatError) as info:
        parse(value)
    assert reason in str(info.value)
    if len(value) > 12:
        assert value not in str(info.value)


def test_keycloak_argon2_credential_is_refused_by_name():
    credential = keycloak_credential(PASSWORD)
    credential["credentialData"] = json.dumps({"hashIterations": 1, "algorithm": "argon2"})
    with pytest.raises(HashFormatError, match="'argon2' is not supported"):
        parse(credential)


def test_a_hash_made_too_costly_after_import_does_not_verify():
    # Bounds hold at login too: a row changed behind the importer's back is not worked on.
    stored = "$pbkdf2-sha256$99999999$c2FsdA$aGFzaGhhc2g"
    assert not Passwords(FAST).verify(stored, PASSWORD)


def test_bcrypt_checks_the_first_72_bytes_the_way_bcrypt_made_them():
    long = "é" * 50  # 100 bytes in UTF-8
    stored = bcrypt.hashpw(long.encode()[:72], bcrypt.gensalt(rounds=4)).decode()
    assert legacy_hashes.matches(stored, long)
