"""Password hashing, legacy import and the password policy (idp.passwords)."""

from __future__ import annotations

import argon2
import bcrypt
import pytest

from connectors.config import ConfigTable
from idp.accounts.passwords import Passwords, PasswordSettings, load_blocklist

# Cheap Argon2 for speed; the policy does not depend on the cost.
FAST = PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1)

LEGACY_PASSWORD = "lètmein Ünïcode"
# Made by passlib 1.7.4 (an independent implementation), not by the code under test.
LEGACY_PBKDF2 = [
    "pbkdf2_sha256$1000$seasalt0123$BpD8DwMBNETAJIDRV5Kj/hM/e72pajj0yHy21Y/0qL4=",
    "pbkdf2_sha1$1000$seasalt0123$8sWmZjHRAz9a8lKMdLAnoDI/VtY=",
    "$pbkdf2-sha256$1000$AQJzYWx0ef8$1vSSmZKQj2U6Zt304Ll.bwRvCzwcx/waCy2H7HZdORI",
    "$pbkdf2-sha512$1000$AQJzYWx0ef8$TEbfs9Hjri5lStvv/ts7DR8mvu5jf8kUYVvRDxcFkP3XMGjPjkxAgr6EDiRzWZEe"
    ".WJdGc4XU7djMKkYKEBXeg",
    "$pbkdf2$1000$AQJzYWx0ef8$HC55EAb88qNL9aeOYa2zl/mLjG8",
]


@pytest.fixture
def passwords() -> Passwords:
    return Passwords(FAST)


def bcrypt_hash(password: str, prefix: str) -> str:
    h = bcrypt.hashpw(password.encode("utf-8")[:72], bcrypt.gensalt(rounds=4)).decode("ascii")
    return prefix + h[4:]


def table(data: dict, errors: list) -> ConfigTable:
    return ConfigTable(data, "idp.toml", "passwords", errors=errors)


# -- hashing ---------------------------------------------------------------


def test_hash_is_argon2id_with_configured_parameters(passwords):
    stored = passwords.hash("correct horse battery staple")
    assert stored.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    assert passwords.hash("correct horse battery staple") != stored  # salted


def test_verify_accepts_right_password_and_rejects_wrong_one(passwords):
    stored = passwords.hash("correct horse battery staple")
    assert passwords.verify(stored, "correct horse battery staple")
    assert not passwords.verify(stored, "correct horse battery stapler")
    assert not passwords.verify(stored, "")


def test_verify_treats_unicode_compatibility_forms_as_equal(passwords):
    # NFKC: the ligature "ﬁ" and full-width digits are the same password as "fi" and "12".
    stored = passwords.hash("ﬁsh and chips １２")
    assert passwords.verify(stored, "fish and chips 12")


def test_long_passwords_are_not_truncated(passwords):
    base = "a" * 99
    stored = passwords.hash(base + "X" + "tail" * 10)
    assert passwords.verify(stored, base + "X" + "tail" * 10)
    assert not passwords.verify(stored, base + "Y" + "tail" * 10)


def test_unknown_user_verifies_a_dummy_hash_and_returns_false(passwords, monkeypatch):
    calls = []
    real_verify = argon2.PasswordHasher.verify
    monkeypatch.setattr(
        argon2.PasswordHasher, "verify", lambda self, h, p: calls.append(h) or real_verify(self, h, p)
    )
    assert passwords.verify(None, "whatever") is False
    assert len(calls) == 1 and calls[0].startswith("$argon2id$v=19$m=1024,t=1,p=1$")


def test_unknown_user_costs_the_same_argon2_work_as_a_wrong_password():
    """The same work, counted rather than timed (a timed assertion fails on a busy machine):
    an unknown user is one Argon2 verification with the configured cost, like a wrong password."""
    real = Passwords(PasswordSettings(time_cost=2, memory_cost=19456, parallelism=1))
    stored = real.hash("correct horse battery staple")
    calls = []

    class CountingHasher:
        def __init__(self, hasher):
            self.hasher = hasher

        def __getattr__(self, name):
            return getattr(self.hasher, name)

        def verify(self, hash_, password):
            calls.append(argon2.extract_parameters(hash_))
            return self.hasher.verify(hash_, password)

    real._hasher = CountingHasher(real._hasher)

    assert real.verify(stored, "wrong guess") is False
    assert real.verify(None, "wrong guess") is False
    known, unknown = calls
    assert unknown == known == argon2.extract_parameters(stored)


@pytest.mark.parametrize("stored", ["", "plain-text", "$argon2id$broken", "md5$abc$def", "$2b$04$short"])
def test_verify_rejects_malformed_or_unknown_hashes(passwords, stored):
    assert passwords.verify(stored, "anything") is False
    assert passwords.needs_rehash(stored)


# -- legacy import -----------------------------------------------------------


@pytest.mark.parametrize("prefix", ["$2a$", "$2b$", "$2y$"])
def test_legacy_bcrypt_verifies_and_needs_rehash(passwords, prefix):
    stored = bcrypt_hash("old portal secret", prefix)
    assert passwords.verify(stored, "old portal secret")
    assert not passwords.verify(stored, "old portal secreT")
    assert passwords.needs_rehash(stored)


def test_legacy_bcrypt_checks_long_passwords_the_way_bcrypt_made_them(passwords):
    # bcrypt only saw 72 bytes; the re-hash at login then keeps the whole password.
    long_password = "x" * 80
    assert passwords.verify(bcrypt_hash(long_password, "$2b$"), long_password)


@pytest.mark.parametrize("stored", LEGACY_PBKDF2)
def test_legacy_pbkdf2_verifies_and_needs_rehash(passwords, stored):
    assert passwords.verify(stored, LEGACY_PASSWORD)
    assert not passwords.verify(stored, LEGACY_PASSWORD.upper())
    assert passwords.needs_rehash(stored)


@pytest.mark.parametrize(
    "stored",
    [
        "pbkdf2_sha256$1000$seasalt0123$not-base64!",
        "pbkdf2_sha256$many$seasalt0123$BpD8DwMBNETAJIDRV5Kj/hM/e72pajj0yHy21Y/0qL4=",
        "pbkdf2_sha256$0$seasalt0123$BpD8DwMBNETAJIDRV5Kj/hM/e72pajj0yHy21Y/0qL4=",
        "pbkdf2_sha256$1000$BpD8DwMBNETAJIDRV5Kj/hM/e72pajj0yHy21Y/0qL4=",
        "$pbkdf2-md5$1000$AQJzYWx0ef8$HC55EAb88qNL9aeOYa2zl/mLjG8",
        "$pbkdf2-sha256$1000$AQJzYWx0ef8",
    ],
)
def test_malformed_legacy_hashes_never_verify(passwords, stored):
    assert passwords.verify(stored, LEGACY_PASSWORD) is False


def test_current_argon2_hash_needs_no_rehash(passwords):
    assert not passwords.needs_rehash(passwords.hash("correct horse battery staple"))


def test_argon2_hash_with_old_parameters_needs_rehash(passwords):
    old = Passwords(PasswordSettings(time_cost=2, memory_cost=1024, parallelism=1))
    stored = old.hash("correct horse battery staple")
    assert passwords.verify(stored, "correct horse battery staple")
    assert passwords.needs_rehash(stored)


def test_argon2i_hash_needs_rehash_to_argon2id(passwords):
    argon2i = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=argon2.Type.I)
    stored = argon2i.hash("pw")
    assert passwords.verify(stored, "pw")
    assert passwords.needs_rehash(stored)


# -- policy ----------------------------------------------------------------


def test_good_password_has_no_problems(passwords):
    assert passwords.problems("purple tractor elbow", username="jdupont", email="jean@example.be") == []


@pytest.mark.parametrize(
    ("password", "kwargs", "code"),
    [
        ("abc1234", {}, "too_short"),
        ("ﬁ" * 3, {}, "too_short"),  # three ligatures are six letters after NFKC
        ("x" * 129, {}, "too_long"),
        ("password", {}, "common"),
        ("PassWord", {}, "common"),
        ("123456789", {}, "common"),
        ("azertyuiop", {}, "common"),
        ("my name is jdupont!", {"username": "JDupont"}, "contains_username"),
        ("jean.dupont@example.be", {"email": "Jean.Dupont@example.be"}, "contains_email"),
        ("hello jean.dupont 2024", {"email": "jean.dupont@example.be"}, "contains_email"),
        ("i love myportal 2024", {"service_name": "My Portal"}, "contains_service_name"),
    ],
)
def test_problems_report_each_code(passwords, password, kwargs, code):
    assert code in passwords.problems(password, **kwargs)


def test_length_counts_code_points_after_nfkc(passwords):
    assert "too_short" not in passwords.problems("ﬁﬁﬁﬁ")  # 8 letters once normalised
    assert "too_short" in passwords.problems("ééééééé")  # 7 code points, 14 UTF-8 bytes
    assert passwords.problems("ü" * 128) == []
    assert passwords.problems("ü" * 129) == ["too_long"]


def test_64_characters_are_accepted_with_default_settings():
    passwords = Passwords(PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1))
    assert passwords.problems("correct horse battery staple " * 2 + "and more") == []


def test_short_context_words_are_ignored(passwords):
    assert passwords.problems("totally unrelated words", username="al", email="al@x.be") == []


def test_no_composition_rules(passwords):
    assert passwords.problems("lowercase letters only here") == []


@pytest.mark.parametrize("word", ["password", "123456", "azerty", "qwerty", "soleil", "motdepasse"])
def test_builtin_blocklist_holds_well_known_passwords(passwords, word):
    assert passwords.is_common(word)
    assert passwords.is_common(word.upper())


def test_builtin_blocklist_has_at_least_ten_thousand_entries():
    from idp.accounts.passwords import BUILTIN_BLOCKLIST

    assert len(load_blocklist(BUILTIN_BLOCKLIST)) >= 10_000


def test_extra_blocklist_file_adds_words(tmp_path):
    extra = tmp_path / "extra.txt"
    extra.write_text("AcmeCorp2024\n\n  Brussels-Lions  \n", encoding="utf-8")
    passwords = Passwords(
        PasswordSettings(time_cost=1, memory_cost=1024, parallelism=1, blocklist_file=extra)
    )
    assert passwords.problems("acmecorp2024") == ["common"]
    assert passwords.problems("BRUSSELS-LIONS") == ["common"]
    assert passwords.problems("password") == ["common"]


# -- settings --------------------------------------------------------------


def test_settings_defaults_are_owasp_sane():
    errors = []
    settings = PasswordSettings.from_table(table({}, errors))
    assert errors == []
    assert settings == PasswordSettings()
    assert settings.memory_cost * settings.time_cost >= 19456 * 2


def test_settings_read_every_key(tmp_path):
    (tmp_path / "words.txt").write_text("x\n", encoding="utf-8")
    errors = []
    data = {
        "min_length": 10,
        "max_length": 256,
        "blocklist_file": "words.txt",
        "argon2": {"time_cost": 2, "memory_cost": 19456, "parallelism": 1},
    }
    t = ConfigTable(data, str(tmp_path / "idp.toml"), "passwords", errors=errors)
    settings = PasswordSettings.from_table(t)
    assert errors == []
    assert settings == PasswordSettings(10, 256, tmp_path / "words.txt", 2, 19456, 1)


@pytest.mark.parametrize(
    ("data", "key", "reason"),
    [
        ({"min_length": 6}, "passwords.min_length", "at least 8"),
        ({"max_length": 32}, "passwords.max_length", "at least 64"),
        ({"max_length": "long"}, "passwords.max_length", "an integer"),
        ({"blocklist_file": "/nonexistent/words.txt"}, "passwords.blocklist_file", "not found"),
        ({"argon2": {"memory_cost": 4096}}, "passwords.argon2.memory_cost", "at least 7168"),
        ({"argon2": {"memory_cost": 19456, "time_cost": 1}}, "passwords.argon2.time_cost", "OWASP"),
        ({"argon2": {"parallelism": 0}}, "passwords.argon2.parallelism", "at least 1"),
        ({"argon2": {"salt_len": 8}}, "passwords.argon2.salt_len", "unknown key"),
        ({"pepper": "x"}, "passwords.pepper", "unknown key"),
    ],
)
def test_settings_report_bad_values(data, key, reason):
    errors = []
    PasswordSettings.from_table(table(data, errors))
    assert any(e.key == key and reason in e.reason for e in errors), errors
