"""Authlib's TLS check (RFC 6749 sections 3.1 and 10.9), kept in production only.

Authlib refuses any request whose URL is plain ``http`` (loopback aside) unless
the process-wide ``AUTHLIB_INSECURE_TRANSPORT`` variable is set. Setting it
would switch the check off for everything in the process, production included.
Instead, a development provider hands Authlib the ``https`` form of the URL
for that check only; the request keeps its real URL. In production the check
sees the URL as it came (behind a proxy: ``https`` from the forwarded headers).
"""

from __future__ import annotations

from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import OAuth2Request
from flask import Request


def for_transport_check(uri: str, production: bool) -> str:
    """The URL Authlib's https check should see: the real one in production."""
    if production or not uri.startswith("http://"):
        return uri
    return "https://" + uri[len("http://") :]


class ProviderRequest(FlaskOAuth2Request):
    """Authlib's Flask request, with the TLS check applied as :func:`for_transport_check` says."""

    def __init__(self, request: Request, production: bool) -> None:
        OAuth2Request.__init__(
            self,
            method=request.method,
            uri=for_transport_check(request.url, production),
            headers=request.headers,
        )
        self.uri = request.url
        self._request = request
        self.payload = FlaskOAuth2Payload(request)
