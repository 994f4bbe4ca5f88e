"""What the eID login page says and links to: its sentences, and the install panel.

The sentences are rendered into the page (the script picks them by code), so
every language the provider speaks is served without a script build. "Try
again" is offered only where trying again can help (``eid.js`` keeps the list
of final codes); a card that is expired, revoked or not Belgian, or a card
linked to no account, gets the other ways to log in instead (and, for
``no_account``, registration).

The install panel is shown when neither the Web eID extension nor the eID
bridge answers: it names the operating system read from the User-Agent
(Windows, macOS, Linux; others get every link) and links to the official
download pages, which the operator may replace (``[connectors.eid.page]``).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import get_locale
from flask_babel import gettext as _

from connectors.eid.page import SYSTEMS, EidPageSettings

LANGUAGES = ("fr", "nl", "de", "en")
SYSTEM_NAMES = {"windows": "Windows", "macos": "macOS", "linux": "Linux"}


def server_messages() -> dict[str, str]:
    """The sentence shown for each code the provider answers, in the page's language."""
    retry = _("Please try again.")
    other = _("Please log in another way.")
    return {
        "malformed": _("The eID software sent an answer the server does not understand. Please update it."),
        "challenge_mismatch": _("This login attempt is no longer valid.") + " " + retry,
        "challenge_expired": _("The login took too long and has expired.") + " " + retry,
        "challenge_replayed": _("This card signature was already used.") + " " + retry,
        "challenge_other_session": _(
            "This card signature was made for another browser window and is refused."
        ),
        "origin_not_allowed": _(
            "The eID login is not set up for this web site. Please contact customer service."
        ),
        "wrong_certificate": _(
            "The card did not use its authentication certificate. Please update the eID software."
        ),
        "certificate_expired": _("Your eID card has expired.") + " " + other,
        "untrusted_certificate": _("This card was not issued by the Belgian eID authorities.") + " " + other,
        "certificate_revoked": _("Your eID card has been revoked and can no longer be used to log in.")
        + " "
        + other,
        "revocation_unknown": _("The validity of your eID card could not be confirmed."),
        "revocation_unavailable": _(
            "The validity of your eID card cannot be checked right now. Please try again in a few minutes."
        ),
        "bad_signature": _("The card's signature is not valid.") + " " + retry,
        "identity_file_invalid": _("The identity data on the card could not be verified."),
        "national_number_mismatch": _("The identity data on the card does not match its certificate."),
        "no_account": _(
            "No account is linked to this eID card. Log in another way, or register to create an account."
        ),
        "account_disabled": _("This account is disabled. Please contact customer service."),
        "login_expired": _(
            "This sign-in took too long or was already used. Please start again from the application."
        ),
        "method_unavailable": _("The eID login is not available for this application."),
        "session_invalid": _("Your session expired. Please reload the page and try again."),
        "too_many_attempts": _("Too many attempts. Please wait a few minutes and try again."),
        "server_error": _("Something went wrong on our side. Please try again in a moment."),
    }


def page_messages() -> dict[str, str]:
    """What the page script says: progress, the card software's errors and the provider's (by code).

    One table of translated sentences, kept whole on purpose: split, it would read worse.
    """
    return {
        "checking": _("Looking for the eID software on this computer…"),
        "ready": _(
            "Your card is ready. Click “Log in with eID”, then enter your PIN in the eID bridge window."
        ),
        "ready_webeid": _(
            "Web eID is ready. Insert your card, click “Log in with eID” and enter your PIN "
            "in the Web eID window."
        ),
        "waiting_pin": _(
            "Enter your PIN in the eID bridge window or on your reader's keypad. Never type it in this page."
        ),
        "waiting_pin_webeid": _(
            "Enter your PIN in the Web eID window or on your reader's keypad. Never type it in this page."
        ),
        "verifying": _("Checking your card…"),
        "redirecting": _("You are logged in. Continuing…"),
        "nothing_found": _(
            "No eID software was found on this computer. Install it as shown below, then click “Check again”."
        ),
        "bridge_not_running": _("The eID bridge is not running on this computer. Start it, then try again."),
        "bridge_update": _(
            "Your eID bridge is too old for this site. Install the new version as shown below, "
            "then click “Check again”."
        ),
        "webeid_missing": _("The Web eID browser extension is not installed or is disabled."),
        "webeid_app_missing": _(
            "The Web eID extension is installed but the Web eID app is not. Install the app as shown below, "
            "then click “Check again”."
        ),
        "webeid_update": _(
            "Your Web eID software is too old. Install the latest version as shown below, "
            "then click “Check again”."
        ),
        "webeid_cancelled": _(
            "The login was cancelled in the Web eID window. If it said that no card was found, insert your "
            "card; if it said that your PIN is blocked, unblock it at your municipality with your PUK code."
        ),
        "webeid_user_timeout": _("The Web eID window waited too long for your PIN.")
        + " "
        + _("Please try again."),
        "webeid_timeout": _("Web eID did not answer in time.") + " " + _("Please try again."),
        "webeid_card_error": _(
            "Web eID could not use your card. Check that it is inserted and that the eID software "
            "(middleware) is installed, then try again."
        ),
        "webeid_error": _("Web eID reported an error.") + " " + _("Please try again."),
        "no_middleware": _(
            "The eID software (middleware) is not installed. Install it from eid.belgium.be, then try again."
        ),
        "no_reader": _("No card reader was found. Connect your card reader, then try again."),
        "no_card": _("No eID card was found. Insert your eID card in the reader, then try again."),
        "pin_cancelled": _("You cancelled the PIN entry."),
        "pin_wrong": _("Wrong PIN."),
        "pin_wrong_tries": _("Wrong PIN. Tries left before your PIN is blocked: {tries}."),
        "pin_blocked": _(
            "Your PIN is blocked. Go to your municipality with the PUK code you received with your card "
            "to unblock it. Until then, please log in another way."
        ),
        "unsupported_card": _("This card is not supported. Please use a Belgian eID card."),
        "card_error": _("The card could not be read. Take it out, insert it again and try again."),
        "bridge_error": _("The eID bridge could not handle the request. Please restart it and try again."),
        "network": _("The server could not be reached. Check your connection and try again."),
        **server_messages(),
    }


# -- the install panel ----------------------------------------------------------


def detect_system(user_agent: str) -> str | None:
    """``windows``, ``macos`` or ``linux`` from a User-Agent header; None for others (phones too)."""
    ua = user_agent or ""
    if "Android" in ua or "iPhone" in ua or "iPad" in ua or "CrOS" in ua:
        return None
    if "Windows" in ua:
        return "windows"
    if "Macintosh" in ua or "Mac OS X" in ua:
        return "macos"
    if "Linux" in ua or "X11" in ua:
        return "linux"
    return None


def page_language() -> str:
    locale = get_locale()
    lang = locale.language if locale is not None else "en"
    return lang if lang in LANGUAGES else "en"


@dataclass(frozen=True)
class InstallLinks:
    system: str | None  # the detected one; None -> the page lists every system
    system_name: str | None
    middleware_url: str
    web_eid_url: str
    bridge_downloads: dict[str, str]  # system -> URL, for the systems shown that have one configured
    help_url: str


def install_links(page: EidPageSettings, user_agent: str, help_url: str) -> InstallLinks:
    lang = page_language()
    system = detect_system(user_agent)
    shown = (system,) if system else SYSTEMS
    return InstallLinks(
        system=system,
        system_name=SYSTEM_NAMES.get(system or ""),
        middleware_url=page.middleware_url.replace("{lang}", lang),
        web_eid_url=page.web_eid_url.replace("{lang}", lang),
        bridge_downloads={
            s: page.bridge_downloads[s].replace("{lang}", lang) for s in shown if s in page.bridge_downloads
        },
        help_url=(page.help_url or help_url).replace("{lang}", lang),
    )
