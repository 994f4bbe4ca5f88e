"""A test-only stand-in for the Web eID browser extension, signing with the SoftHSM2 card.

:data:`INIT_SCRIPT` runs in the page before its own scripts (Playwright
``add_init_script``) and answers the page's ``window.postMessage`` requests the
way the extension's content script does (``web-eid.js`` protocol):
``web-eid:status`` and ``web-eid:authenticate`` are acknowledged with
``<action>-ack`` and answered with ``<action>-success`` or ``<action>-failure``
(``{"error": {"code": "ERR_WEBEID_..."}}``). The work is done in Python
(:class:`WebEidStandIn`, exposed to the page as ``__webEidStandIn``): the
authentication signs ``hash(origin) ‖ hash(challenge)`` with the card's
``Authentication`` key in SoftHSM2 through PyKCS11 (in a child process,
``python -m tests.support.web_eid``, since SoftHSM reads ``SOFTHSM2_CONF``
once per process) and returns the token in the ``web-eid:1.0`` format, the
ECDSA signature as raw ``r ‖ s`` as the Web eID app sends it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_VERSION = "https://web-eid.eu/web-eid-app/releases/2.5.0+0"

INIT_SCRIPT = """
(() => {
  const reply = (data) => window.postMessage(data, window.location.origin);
  window.addEventListener("message", async (event) => {
    const msg = event.data;
    if (event.source !== window || !msg || typeof msg.action !== "string") return;
    if (msg.action !== "web-eid:status" && msg.action !== "web-eid:authenticate") return;
    const request = {
      action: msg.action,
      origin: window.location.origin,
      challenge: msg.challengeNonce || null,
      lang: (msg.options && msg.options.lang) || null,
    };
    if (!(await window.__webEidStandIn({ ...request, step: "present" }))) return;  // not installed
    reply({ action: msg.action + "-ack" });
    const answer = await window.__webEidStandIn({ ...request, step: "run" });
    if (answer.error) {
      reply({ action: msg.action + "-failure", error: answer.error });
    } else {
      reply({ action: msg.action + "-success", ...answer });
    }
  });
})();
"""


class WebEidStandIn:
    """What the stand-in extension does; tests change ``installed``, ``fail`` and ``sign_*`` between steps."""

    def __init__(self, card_env: dict[str, str], pin: str) -> None:
        self.card_env = card_env
        self.pin = pin
        self.installed = True
        self.fail: dict[str, str] | None = None  # e.g. {"code": "ERR_WEBEID_USER_CANCELLED"}
        self.sign_origin: str | None = None  # sign for another origin than the page's
        self.sign_challenge: str | None = None  # sign another challenge than the one asked
        self.software_card = None  # a tests.support.eid_pki.Card to sign with instead (untrusted card)
        self.requests: list[dict] = []

    def install(self, page) -> None:
        page.expose_function("__webEidStandIn", self.handle)
        page.add_init_script(INIT_SCRIPT)

    def handle(self, request: dict):
        if request["step"] == "present":
            return self.installed
        self.requests.append(request)
        if self.fail is not None:
            return {"error": {**self.fail, "message": "stand-in failure"}}
        if request["action"] == "web-eid:status":
            return {"library": "2.0.0", "extension": "2.6.0", "nativeApp": "2.5.0"}
        origin = self.sign_origin or request["origin"]
        challenge = self.sign_challenge or request["challenge"]
        if self.software_card is not None:
            token = self.software_card.web_eid_token(origin, challenge)
            return {k: v for k, v in token.items() if k != "challenge"}
        return sign_with_card(self.card_env, self.pin, origin, challenge)


def sign_with_card(card_env: dict[str, str], pin: str, origin: str, challenge: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.web_eid", origin, challenge],
        env={**os.environ, **card_env, "WEB_EID_STANDIN_PIN": pin},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)


def _sign(origin: str, challenge: str) -> dict:
    """In the child process: the Web eID app's authentication with the SoftHSM2 card."""
    from cryptography import x509
    from PyKCS11 import PyKCS11 as p11

    from connectors.eid import token as eid_token

    lib = p11.PyKCS11Lib()
    lib.load(os.environ["PYKCS11LIB"])
    slot = next(
        s for s in lib.getSlotList(tokenPresent=True) if lib.getTokenInfo(s).label.strip() == "BELPIC"
    )
    session = lib.openSession(slot)
    try:
        cert_obj = session.findObjects(
            [(p11.CKA_CLASS, p11.CKO_CERTIFICATE), (p11.CKA_LABEL, "Authentication")]
        )[0]
        der, key_id = (bytes(v) for v in session.getAttributeValue(cert_obj, [p11.CKA_VALUE, p11.CKA_ID]))
        x509.load_der_x509_certificate(der)
        session.login(os.environ["WEB_EID_STANDIN_PIN"])
        key = session.findObjects([(p11.CKA_CLASS, p11.CKO_PRIVATE_KEY), (p11.CKA_ID, key_id)])[0]
        algorithm = "ES384"
        hash_alg = eid_token.hash_algorithm(algorithm)
        digest = eid_token.digest(eid_token.signed_payload(origin, challenge, algorithm), hash_alg)
        signature = bytes(session.sign(key, digest, p11.Mechanism(p11.CKM_ECDSA, None)))
        session.logout()
    finally:
        session.closeSession()
    return {
        "unverifiedCertificate": base64.b64encode(der).decode(),
        "algorithm": algorithm,
        "signature": base64.b64encode(signature).decode(),
        "format": "web-eid:1.0",
        "appVersion": APP_VERSION,
    }


if __name__ == "__main__":
    print(json.dumps(_sign(sys.argv[1], sys.argv[2])))
