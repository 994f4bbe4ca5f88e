"""Our RP keys towards itsme: storage at rest, the published JWKS and rotation."""

from __future__ import annotations

import json
import stat
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from joserfc import jwe, jws
from joserfc.jwk import RSAKey

from connectors.itsme import RPKeyError, RPKeys
from connectors.itsme.keys import ENC_GRACE, SIG_PUBLISH_DELAY, SIG_RETENTION

T0 = 1_800_000_000.0
PASSPHRASE = "correct horse battery staple"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth"}


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def small_keys(monkeypatch):
    monkeypatch.setattr(RPKeys, "key_size", 2048)  # speed; production uses KEY_SIZE


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def keys(tmp_path, clock):
    return RPKeys.load_or_create(tmp_path / "itsme-keys", PASSPHRASE, clock)


def jwks(keys: RPKeys) -> list[dict]:
    return json.loads(keys.public_jwks_bytes())["keys"]


def kids(keys: RPKeys, use: str) -> list[str]:
    return [k["kid"] for k in jwks(keys) if k["use"] == use]


def encrypt_to(kid: str, keys: RPKeys, payload: bytes = b"hello") -> str:
    public = RSAKey.import_key(next(k for k in jwks(keys) if k["kid"] == kid))
    header = {"alg": "RSA-OAEP-256", "enc": "A128CBC-HS256", "kid": kid}
    return jwe.encrypt_compact(header, payload, public, algorithms=["RSA-OAEP-256", "A128CBC-HS256"])


def test_first_load_creates_one_sig_and_one_enc_key_with_kids(keys):
    published = jwks(keys)
    assert sorted(k["use"] for k in published) == ["enc", "sig"]
    assert all(k["kty"] == "RSA" and k["kid"] for k in published)
    assert keys.signing_key().kid == kids(keys, "sig")[0]
    assert keys.decryption_key(kids(keys, "enc")[0]) is not None


def test_private_keys_are_encrypted_at_rest_and_readable_only_by_the_owner(keys):
    pems = sorted(keys.keys_dir.glob("*.pem"))
    assert len(pems) == 2
    for pem in pems:
        assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600


def test_loading_again_returns_the_same_keys(keys, clock):
    again = RPKeys.load_or_create(keys.keys_dir, PASSPHRASE, clock)
    assert again.public_jwks_bytes() == keys.public_jwks_bytes()
    assert again.signing_key().kid == keys.signing_key().kid


def test_wrong_passphrase_is_refused_without_revealing_key_material(keys, clock):
    with pytest.raises(RPKeyError) as exc:
        RPKeys.load_or_create(keys.keys_dir, "not the passphrase", clock)
    assert "wrong passphrase" in str(exc.value)


def test_an_empty_passphrase_is_refused(tmp_path):
    with pytest.raises(RPKeyError):
        RPKeys.load_or_create(tmp_path, "")


def test_a_damaged_manifest_is_reported(keys, clock):
    (keys.keys_dir / "keys.json").write_text("{not json")
    with pytest.raises(RPKeyError):
        RPKeys.load_or_create(keys.keys_dir, PASSPHRASE, clock)


@pytest.mark.parametrize("rotations", [0, 1, 3])
def test_public_jwks_never_contains_private_parts(keys, clock, rotations):
    for _ in range(rotations):
        clock.t += 3600
        keys.rotate()
    for key in jwks(keys):
        assert not PRIVATE_MEMBERS & key.keys()
        assert key["kty"] == "RSA" and key["use"] in ("sig", "enc") and key["kid"]
        RSAKey.import_key(key)  # a valid public JWK


def test_signing_rotation_publishes_the_new_key_before_it_signs_and_keeps_the_old_one_after(keys, clock):
    old = keys.signing_key().kid
    summary = keys.rotate()
    # published at once, signing only once itsme can have fetched it
    assert set(kids(keys, "sig")) == {summary["sig"], old}
    assert keys.signing_key().kid == old
    clock.t += SIG_PUBLISH_DELAY - 1
    assert keys.signing_key().kid == old
    clock.t += 1
    assert keys.signing_key().kid == summary["sig"] != old
    clock.t += SIG_RETENTION - 1
    assert old in kids(keys, "sig")
    clock.t += 1
    assert kids(keys, "sig") == [summary["sig"]]


def test_assertions_signed_after_rotation_verify_against_the_published_jwks(keys):
    keys.rotate()
    signer = keys.signing_key()
    token = jws.serialize_compact({"alg": "RS256", "kid": signer.kid}, b"{}", signer, algorithms=["RS256"])
    published = RSAKey.import_key(next(k for k in jwks(keys) if k["kid"] == signer.kid))
    assert jws.deserialize_compact(token, published, algorithms=["RS256"]).payload == b"{}"


def test_encryption_rotation_publishes_only_the_new_enc_key(keys):
    old = kids(keys, "enc")[0]
    summary = keys.rotate()
    assert kids(keys, "enc") == [summary["enc"]]
    assert summary["enc"] != old and old in summary["retired"]


def test_old_enc_key_still_decrypts_within_24_hours(keys, clock):
    old = kids(keys, "enc")[0]
    token = encrypt_to(old, keys)
    keys.rotate()
    clock.t += ENC_GRACE - 1
    key = keys.decryption_key(old)
    assert key is not None
    assert jwe.decrypt_compact(token, key, algorithms=["RSA-OAEP-256", "A128CBC-HS256"]).plaintext == b"hello"


def test_old_enc_key_no_longer_decrypts_after_24_hours(keys, clock):
    old = kids(keys, "enc")[0]
    keys.rotate()
    clock.t += ENC_GRACE
    assert keys.decryption_key(old) is None


@pytest.mark.parametrize(
    ("kid", "found"),
    [("unknown-kid", False), ("sig", False), (None, True)],
    ids=["unknown kid", "a sig key's kid", "no kid means the current key"],
)
def test_decryption_key_lookup(keys, kid, found):
    if kid == "sig":
        kid = keys.signing_key().kid
    assert (keys.decryption_key(kid) is not None) is found


def test_rotation_removes_keys_past_their_grace_from_disk(keys, clock):
    first = {p.stem for p in keys.keys_dir.glob("*.pem")}
    keys.rotate()
    # the old enc key goes after its grace; the old sig key signs until the switch, then stays published
    clock.t += max(ENC_GRACE, SIG_PUBLISH_DELAY + SIG_RETENTION) + 1
    summary = keys.rotate()
    assert set(summary["removed"]) == first
    assert not first & {p.stem for p in keys.keys_dir.glob("*.pem")}


def test_a_rotation_by_another_process_is_picked_up(keys, clock):
    other = RPKeys.load_or_create(keys.keys_dir, PASSPHRASE, clock)
    summary = other.rotate()
    assert keys.decryption_key(summary["enc"]) is not None  # unknown kid: one re-read of the folder
    clock.t += SIG_PUBLISH_DELAY
    assert keys.signing_key().kid == summary["sig"]
    assert summary["enc"] in kids(keys, "enc")


def test_concurrent_first_loads_agree_on_one_key_set(tmp_path, clock):
    barrier = threading.Barrier(4)

    def load():
        barrier.wait()
        return RPKeys.load_or_create(tmp_path / "shared", PASSPHRASE, clock).public_jwks_bytes()

    with ThreadPoolExecutor(4) as pool:
        results = set(pool.map(lambda _: load(), range(4)))
    assert len(results) == 1
    assert len(list((tmp_path / "shared").glob("*.pem"))) == 2


def test_writes_leave_no_temporary_files(keys):
    keys.rotate()
    assert not [p for p in keys.keys_dir.iterdir() if p.name.endswith(".tmp")]


def test_an_immediate_rotation_signs_with_the_new_key_at_once(keys):
    old = keys.signing_key().kid
    summary = keys.rotate(immediate=True)
    assert keys.signing_key().kid == summary["sig"] != old
    assert old in kids(keys, "sig")  # still published for assertions already sent
