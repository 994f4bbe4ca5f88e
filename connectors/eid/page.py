"""What the eID login page needs to find the card software, and where it sends people without it.

The ``[connectors.eid.page]`` table: the bridge's loopback URL and the oldest
bridge version the page accepts, whether to try the Web eID extension first,
and the links of the "install" panel (the eID middleware and Web eID on their
official sites, the bridge downloads, a help page). ``{lang}`` in a link is
replaced by the page's language (``fr``, ``nl``, ``de`` or ``en``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field

from connectors.config import ConfigTable

DEFAULT_BRIDGE_URL = "http://127.0.0.1:35963"
# The Belgian government's eID software page, and the Web eID project's (app and browser extension).
MIDDLEWARE_URL = "https://eid.belgium.be/{lang}"
WEB_EID_URL = "https://web-eid.eu/"
SYSTEMS = ("windows", "macos", "linux")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
_VERSION = re.compile(r"\d+(\.\d+){0,2}")


@dataclass(frozen=True)
class EidPageSettings:
    bridge_url: str = DEFAULT_BRIDGE_URL
    min_bridge_version: str = "1.0.0"
    web_eid: bool = True
    help_url: str | None = None  # None: the provider's own help page
    middleware_url: str = MIDDLEWARE_URL
    web_eid_url: str = WEB_EID_URL
    # Per system (windows, macos, linux): where the bridge's installer is; missing -> the help page.
    bridge_downloads: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_table(cls, t: ConfigTable) -> EidPageSettings:
        bridge_url = t.str("bridge_url", DEFAULT_BRIDGE_URL)
        parts = urllib.parse.urlsplit(bridge_url or "")
        if (
            parts.scheme != "http"
            or parts.netloc.rsplit(":", 1)[0] not in LOOPBACK_HOSTS
            or parts.path.strip("/")
        ):
            t.error(
                "bridge_url", "must be http://127.0.0.1:<port> (the bridge listens on this computer only)"
            )
        min_version = t.str("min_bridge_version", "1.0.0")
        if isinstance(min_version, str) and not _VERSION.fullmatch(min_version):
            t.error("min_bridge_version", "must be a version such as 1.2.0")
        web_eid = t.bool("web_eid", True)
        help_url = _link(t, "help_url", None)
        middleware_url = _link(t, "middleware_url", MIDDLEWARE_URL)
        web_eid_url = _link(t, "web_eid_url", WEB_EID_URL)
        d = t.table("bridge_downloads")
        downloads = {name: url for name in SYSTEMS if (url := _link(d, name, None))}
        d.finish()
        t.finish()
        return cls(
            bridge_url=bridge_url,
            min_bridge_version=min_version,
            web_eid=web_eid,
            help_url=help_url,
            middleware_url=middleware_url,
            web_eid_url=web_eid_url,
            bridge_downloads=downloads,
        )


def _link(t: ConfigTable, name: str, default: str | None) -> str | None:
    value = t.str(name, default)
    if value is None or value == default:
        return value
    parts = urllib.parse.urlsplit(value.replace("{lang}", "en"))
    if parts.scheme != "https" or not parts.hostname:
        t.error(name, "must be an https:// URL")
        return default
    if "{" in value.replace("{lang}", ""):
        t.error(name, "the only placeholder is {lang}")
        return default
    return value
