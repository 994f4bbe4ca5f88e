"""Belgian eID login: the server-side verifier (the local bridge is its own distribution, ``bridge/``).

The provider hands the login page a challenge (:func:`new_challenge`), the
page asks the bridge on the loopback interface to sign it with the card, and
:class:`EidVerifier` checks the returned token (see ``docs/bridge.md``). This
package imports no PyKCS11: only the bridge (its own distribution, ``bridge/``) needs it.
"""

from connectors.eid.ocsp import (
    CERTIFICATE_REVOKED,
    REVOCATION_UNAVAILABLE,
    REVOCATION_UNKNOWN,
    Cache,
    MemoryCache,
    OcspSettings,
)
from connectors.eid.settings import EidSettings
from connectors.eid.verifier import (
    AMR,
    BAD_SIGNATURE,
    CERTIFICATE_EXPIRED,
    CHALLENGE_EXPIRED,
    CHALLENGE_MISMATCH,
    CHALLENGE_REPLAYED,
    ERROR_CODES,
    IDENTITY_FILE_INVALID,
    ISSUER,
    MALFORMED,
    NATIONAL_NUMBER_MISMATCH,
    ORIGIN_NOT_ALLOWED,
    UNTRUSTED_CERTIFICATE,
    WRONG_CERTIFICATE,
    EidVerifier,
    new_challenge,
)

__all__ = [
    "AMR",
    "BAD_SIGNATURE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "CHALLENGE_EXPIRED",
    "CHALLENGE_MISMATCH",
    "CHALLENGE_REPLAYED",
    "ERROR_CODES",
    "IDENTITY_FILE_INVALID",
    "ISSUER",
    "MALFORMED",
    "NATIONAL_NUMBER_MISMATCH",
    "ORIGIN_NOT_ALLOWED",
    "REVOCATION_UNAVAILABLE",
    "REVOCATION_UNKNOWN",
    "UNTRUSTED_CERTIFICATE",
    "WRONG_CERTIFICATE",
    "Cache",
    "EidSettings",
    "EidVerifier",
    "MemoryCache",
    "OcspSettings",
    "new_challenge",
]
