"""Which web origins the bridge may answer: the same rule the provider applies to its own settings."""

from __future__ import annotations

import urllib.parse

DEV_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def origin_problem(origin: str) -> str | None:
    """Why ``origin`` is not a serialised web origin we accept (None when it is fine)."""
    parts = urllib.parse.urlsplit(origin)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "has an invalid port"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an origin such as https://login.example.be"
    if parts.username or parts.password or parts.path or parts.query or parts.fragment:
        return "must be scheme://host[:port] with no path, query or trailing slash"
    if origin != origin.lower():
        return "must be written in lower case, as browsers send it"
    if parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] not in DEV_HOSTS:
        return "must use https (http is allowed for 127.0.0.1, localhost and [::1] only)"
    return None
