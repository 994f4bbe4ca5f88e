"""What the account page says about a session: the browser and device from its stored
User-Agent (parsed by ``ua-parser``, the maintained port of the Browserscope rules) and
its dates in the operator's time zone — no IP address and no location lookup."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import ua_parser
from flask_babel import format_datetime
from flask_babel import gettext as _

from idp.core.branding import branding


@lru_cache(maxsize=1024)
def _parsed(user_agent: str) -> tuple[str | None, str | None, str | None]:
    result = ua_parser.parse(user_agent[:512])
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    device = result.device.family if result.device else None
    if browser == "Other":
        browser = None
    if system == "Other":
        system = None
    if device in ("Other", "Spider", "Generic Smartphone", "Generic Feature Phone"):
        device = None
    return browser, system, device


def describe(user_agent: str | None) -> str:
    """ "Firefox on Windows", "Mobile Safari on iPhone (iOS)", or "Unknown browser"."""
    browser, system, device = _parsed(user_agent or "")
    if not browser:
        return _("Unknown browser")
    where = f"{device} ({system})" if device and system and device != system else device or system
    return _("%(browser)s on %(system)s", browser=browser, system=where) if where else browser


def when(timestamp: int | None) -> str:
    """A date and time in the page's language and the operator's time zone."""
    if not timestamp:
        return "—"
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC).astimezone(branding().zone)
    return format_datetime(moment.replace(tzinfo=None), "medium", rebase=False)
