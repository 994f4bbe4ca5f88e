"""One key per purpose, and nothing a person typed kept in clear where a keyed hash serves."""

from __future__ import annotations

from urllib.parse import urlsplit

from idp.core import hashing
from tests.conftest import PASSWORD, authorize_params
from tests.support.sms_login import alice_fixture, login_with_sms, post_password  # noqa: F401
from tests.support.tables import rows_mentioning


def test_password_typed_into_the_username_field_is_stored_nowhere(app, client, alice):
    resp = client.get("/authorize", query_string=authorize_params()[0])
    tx_path = urlsplit(resp.location).path
    # The classic slip: the password typed as the username, then something else as the password.
    slip = post_password(client, tx_path, PASSWORD, "not the password at all")
    assert slip.status_code == 400
    again = post_password(client, tx_path, PASSWORD.upper(), "still not it")
    assert again.status_code == 400
    assert login_with_sms(client, app, tx_path).status_code == 303
    assert rows_mentioning(app, [PASSWORD, "horse battery"]) == []


def test_failure_counter_of_a_typed_name_is_a_keyed_hash_of_the_normalised_name(app):
    from idp.login import lockout

    with app.app_context():
        key = lockout.password_key("  Alice ")
        assert key == lockout.password_key("alice")
        assert "alice" not in key.lower()
        assert key.startswith("password:") and len(key) == len("password:") + 64


def test_every_purpose_has_its_own_key(app):
    with app.app_context():
        keys = {p: hashing.derive_key(p) for p in hashing.PURPOSES}
        assert len(set(keys.values())) == len(keys)
        assert app.config["SECRET_KEY"] not in keys.values()
        assert app.config["SECRET_KEY"] != app.extensions["idp.settings"].secret_key


def test_unknown_purpose_is_refused(app):
    import pytest

    with app.app_context(), pytest.raises(ValueError):
        hashing.derive_key("csrf-typo")


def test_rotating_the_session_key_leaves_identifier_and_code_hashes_alone(make_app):
    first = make_app()
    second = make_app({"provider": {"session_key_version": 2}})
    hashes = []
    for app in (first, second):
        with app.app_context():
            hashes.append(
                (
                    hashing.national_number_hash("85073003328"),
                    hashing.keyed_digest("otp", "login", "b", "123456"),
                    hashing.derive_key("totp"),
                )
            )
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]
    assert hashes[0] == hashes[1]


def test_a_new_identifier_key_version_hashes_differently(make_app):
    first = make_app()
    second = make_app({"provider": {"identifier_key_version": 2}})
    with first.app_context():
        v1 = hashing.national_number_hash("85073003328")
    with second.app_context():
        v2 = hashing.national_number_hash("85073003328")
        assert hashing.national_number_hash("85073003328", version=1) == v1
    assert v1 != v2


def test_authenticator_secret_sealed_before_keys_per_purpose_still_opens_and_new_ones_use_the_totp_key(app):
    import base64

    from cryptography.fernet import Fernet

    from idp.login import totp

    with app.app_context():
        legacy = Fernet(base64.urlsafe_b64encode(hashing.legacy_key("idp-totp-secret")))
        old = totp.PREFIX + legacy.encrypt(b"JBSWY3DPEHPK3PXP").decode()
        assert totp.unseal(old) == "JBSWY3DPEHPK3PXP"
        new = totp.seal("JBSWY3DPEHPK3PXP")
        own = Fernet(base64.urlsafe_b64encode(hashing.derive_key("totp")))
        assert own.decrypt(new[len(totp.PREFIX) :].encode()) == b"JBSWY3DPEHPK3PXP"
