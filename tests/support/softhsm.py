"""A SoftHSM2 token standing in for a Belgian eID card in tests.

``create_card_token`` makes a private SoftHSM2 configuration in a temporary
folder (``SOFTHSM2_CONF``), initialises a token labelled ``BELPIC`` and loads
a test card into it the way the real card presents itself over PKCS#11:
certificates ``Authentication``, ``Signature``, ``CA``, ``Root``; EC P-384
private keys sharing their certificate's ``CKA_ID``; public ``CKO_DATA``
objects ``DATA_FILE``, ``ADDRESS_FILE``, ``SIGN_DATA_FILE``,
``SIGN_ADDRESS_FILE``, ``CERT_RN_FILE``, ``PHOTO_FILE``. Objects are created
by a child process (``python -m tests.support.softhsm spec.json``) because
SoftHSM reads ``SOFTHSM2_CONF`` once per process.

Unlike the card, SoftHSM always requires ``C_Login`` and never blocks the PIN (it does set
``CKF_USER_PIN_COUNT_LOW`` after a wrong entry).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LABEL = "BELPIC"
SO_PIN = "87654321"
SECP384R1_OID = bytes.fromhex("06052b81040022")
ROOT = Path(__file__).resolve().parents[2]


def softhsm_missing() -> str | None:
    """Why SoftHSM2 cannot be used here, or None when it can."""
    if not Path(MODULE).exists():
        return f"SoftHSM2 module {MODULE} not found (apt-get install softhsm2)"
    if shutil.which("softhsm2-util") is None:
        return "softhsm2-util not found (apt-get install softhsm2)"
    try:
        import PyKCS11  # noqa: F401
    except ImportError:
        return "PyKCS11 is not installed (pip install -e .[test])"
    return None


def require_softhsm() -> None:
    """Skip when SoftHSM2 is missing; under CI=true, fail instead so the gap cannot go unnoticed."""
    reason = softhsm_missing()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class SoftToken:
    conf: Path
    pin: str

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "PYKCS11LIB": MODULE}


def create_card_token(folder: Path, card, pin: str = "1234") -> SoftToken:
    """A BELPIC token holding ``card`` (a :class:`tests.support.eid_pki.Card`)."""
    tokens = folder / "tokens"
    tokens.mkdir(parents=True)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", pin, "--so-pin", SO_PIN],
        env=env,
        check=True,
        capture_output=True,
    )
    spec = folder / "card.json"
    spec.write_text(json.dumps(_spec(card, pin)))
    subprocess.run(
        [sys.executable, "-m", "tests.support.softhsm", str(spec)], env=env, check=True, cwd=ROOT, timeout=60
    )
    spec.unlink()  # it holds private keys
    return SoftToken(conf, pin)


def _scalar(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_numbers().private_value.to_bytes(48, "big").hex()


def _der(issued) -> str:
    return issued.cert.public_bytes(serialization.Encoding.DER).hex()


def _spec(card, pin: str) -> dict:
    return {
        "pin": pin,
        "certificates": [
            {"label": "Authentication", "id": "02", "der": _der(card.authentication)},
            {"label": "Signature", "id": "03", "der": _der(card.signature)},
            {"label": "CA", "id": "04", "der": _der(card.ca)},
            {"label": "Root", "id": "05", "der": _der(card.root)},
        ],
        "keys": [
            {"label": "Authentication", "id": "02", "value": _scalar(card.authentication.key)},
            {"label": "Signature", "id": "03", "value": _scalar(card.signature.key)},
        ],
        "data": [
            {"label": "DATA_FILE", "value": card.data_file.hex()},
            {"label": "ADDRESS_FILE", "value": card.address_file.hex()},
            {"label": "SIGN_DATA_FILE", "value": card.data_signature.hex()},
            {"label": "SIGN_ADDRESS_FILE", "value": card.address_signature.hex()},
            {"label": "CERT_RN_FILE", "value": _der(card.rrn)},
            {"label": "PHOTO_FILE", "value": card.photo_file.hex()},
        ],
    }


def _load(spec: dict) -> None:
    """Runs in the child process with SOFTHSM2_CONF set."""
    from cryptography import x509
    from PyKCS11 import PyKCS11 as p11

    lib = p11.PyKCS11Lib()
    lib.load(MODULE)
    slot = next(s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == LABEL)
    session = lib.openSession(slot, p11.CKF_SERIAL_SESSION | p11.CKF_RW_SESSION)
    session.login(spec["pin"])
    for c in spec["certificates"]:
        der = bytes.fromhex(c["der"])
        cert = x509.load_der_x509_certificate(der)
        session.createObject(
            [
                (p11.CKA_CLASS, p11.CKO_CERTIFICATE),
                (p11.CKA_CERTIFICATE_TYPE, p11.CKC_X_509),
                (p11.CKA_TOKEN, p11.CK_TRUE),
                (p11.CKA_PRIVATE, p11.CK_FALSE),
                (p11.CKA_LABEL, c["label"]),
                (p11.CKA_ID, bytes.fromhex(c["id"])),
                (p11.CKA_SUBJECT, cert.subject.public_bytes()),
                (p11.CKA_VALUE, der),
            ]
        )
    for k in spec["keys"]:
        session.createObject(
            [
                (p11.CKA_CLASS, p11.CKO_PRIVATE_KEY),
                (p11.CKA_KEY_TYPE, p11.CKK_EC),
                (p11.CKA_TOKEN, p11.CK_TRUE),
                (p11.CKA_PRIVATE, p11.CK_TRUE),
                (p11.CKA_SENSITIVE, p11.CK_TRUE),
                (p11.CKA_SIGN, p11.CK_TRUE),
                (p11.CKA_LABEL, k["label"]),
                (p11.CKA_ID, bytes.fromhex(k["id"])),
                (p11.CKA_EC_PARAMS, SECP384R1_OID),
                (p11.CKA_VALUE, bytes.fromhex(k["value"])),
            ]
        )
    for d in spec["data"]:
        session.createObject(
            [
                (p11.CKA_CLASS, p11.CKO_DATA),
                (p11.CKA_TOKEN, p11.CK_TRUE),
                (p11.CKA_PRIVATE, p11.CK_FALSE),
                (p11.CKA_LABEL, d["label"]),
                (p11.CKA_VALUE, bytes.fromhex(d["value"])),
            ]
        )
    session.logout()
    session.closeSession()


if __name__ == "__main__":
    _load(json.loads(Path(sys.argv[1]).read_text()))


BRIDGE_SOURCE = ROOT / "bridge" / "src"


def start_bridge(
    env: dict[str, str], origin: str, *args: str, command: list[str] | None = None
) -> tuple[subprocess.Popen, str]:
    """Start a bridge on a free loopback port for ``origin``; (process, its URL).

    ``command`` runs an installed bridge (a venv's ``idp-eid-bridge``, the one-file build); by
    default the bridge's source in ``bridge/src`` runs with this interpreter.
    """
    run_env = {**os.environ, **env}
    if command is None:
        command = [sys.executable, "-m", "idp_eid_bridge"]
        run_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BRIDGE_SOURCE), run_env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [*command, "--port", "0", "--allowed-origin", origin, *args],
        env=run_env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        pytest.fail(f"bridge did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()


def point_page_at_bridge(app, url: str) -> None:
    """Tell the eID page of a running ``app`` where the bridge listens (``[connectors.eid.page]``)."""
    from dataclasses import replace

    connectors = app.extensions["idp.settings"].connectors
    connectors["eid"] = replace(connectors["eid"], page=replace(connectors["eid"].page, bridge_url=url))
