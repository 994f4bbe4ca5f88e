"""Accounts as an old system exports them: one per hash format, with hashes made by independent libraries."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json

import argon2
import bcrypt
from passlib import hash as ph

LEGACY_PASSWORD = "Oude wachtwoord 2019!"
FIELDS = (
    "username",
    "password_hash",
    "email",
    "email_verified",
    "mobile",
    "mobile_verified",
    "given_name",
    "family_name",
    "customer_number",
    "must_change_password",
    "must_reverify_mobile",
)


def keycloak_credential(password: str, iterations: int = 1000) -> dict:
    salt = b"keycloak-salt-16"
    value = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, 64)
    return {
        "type": "password",
        "secretData": json.dumps(
            {"value": base64.b64encode(value).decode(), "salt": base64.b64encode(salt).decode()}
        ),
        "credentialData": json.dumps({"hashIterations": iterations, "algorithm": "pbkdf2-sha256"}),
    }


def django_scrypt(password: str, n: int = 1024) -> str:
    key = hashlib.scrypt(password.encode(), salt=b"djangosalt", n=n, r=8, p=1, dklen=64)
    return f"scrypt${n}$djangosalt$8$1${base64.b64encode(key).decode()}"


def hashes(password: str = LEGACY_PASSWORD) -> dict[str, str | dict]:
    """One exported hash of ``password`` per format (cheap cost parameters)."""
    return {
        "bcrypt": bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4))
        .decode()
        .replace("$2b$", "$2y$", 1),
        "django_pbkdf2": ph.django_pbkdf2_sha256.using(rounds=1000).hash(password),
        "modular_pbkdf2": ph.pbkdf2_sha512.using(rounds=1000).hash(password),
        "keycloak": keycloak_credential(password),
        "argon2i": argon2.PasswordHasher(1, 1024, 1, type=argon2.Type.I).hash(password),
        "argon2id": argon2.PasswordHasher(1, 1024, 1).hash(password),
        "scrypt": ph.scrypt.using(rounds=10).hash(password),
        "django_scrypt": django_scrypt(password),
        "sha256_crypt": ph.sha256_crypt.using(rounds=1000).hash(password),
        "sha512_crypt": ph.sha512_crypt.using(rounds=1000).hash(password),
    }


def weak_hash(password: str = LEGACY_PASSWORD) -> str:
    return ph.ldap_salted_sha256.hash(password)


def account(username: str, password_hash, number: int = 0, **extra) -> dict:
    """One exported account with a verified e-mail and mobile (+3247012xxxx)."""
    row = {
        "username": username,
        "password_hash": password_hash,
        "email": f"{username.lower()}@example.com",
        "email_verified": True,
        "mobile": f"+324701{number:05d}",
        "mobile_verified": True,
        "given_name": "Jan",
        "family_name": "Peeters",
    }
    row.update(extra)
    return row


def one_per_format(password: str = LEGACY_PASSWORD) -> list[dict]:
    return [account(f"old_{name}", h, i + 1) for i, (name, h) in enumerate(hashes(password).items())]


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    columns = [f for f in FIELDS if any(f in r for r in rows)]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {
                k: json.dumps(v)
                if isinstance(v, dict)
                else ("true" if v is True else "false" if v is False else v)
                for k, v in r.items()
            }
        )
    return out.getvalue()
