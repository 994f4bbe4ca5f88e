"""The itsme connector: log a person in with itsme, the Belgian identity app.

We are an OpenID Connect client of itsme (OIDC Core section 3.1, authorization
code flow with PKCE, ``private_key_jwt``), receiving signed-then-encrypted
ID tokens and userinfo responses. See ``shared/reference/itsme.md``.

Framework-free: the host stores the transaction from
:meth:`ItsmeConnector.begin`, serves :meth:`RPKeys.public_jwks_bytes` at the
JWKS URL registered with itsme, and calls :meth:`ItsmeConnector.complete`
on the callback.
"""

from .connector import ItsmeConnector
from .identity import AMR_ADVANCED, AMR_BASIC, CARD_NUMBER, NATIONAL_NUMBER
from .keys import RPKeyError, RPKeys
from .settings import ACR_ADVANCED, ACR_BASIC, DISCOVERY_URLS, ItsmeSettings

__all__ = [
    "ACR_ADVANCED",
    "ACR_BASIC",
    "AMR_ADVANCED",
    "AMR_BASIC",
    "CARD_NUMBER",
    "DISCOVERY_URLS",
    "NATIONAL_NUMBER",
    "ItsmeConnector",
    "ItsmeSettings",
    "RPKeyError",
    "RPKeys",
]
