"""The operator's brand on every page: the ``[branding]`` table.

Logo, favicon and the itsme / eID marks are files the operator supplies (SVG or PNG,
ICO too for the favicon); they are read once at start-up, checked by their first
bytes, and served from this server (``/branding/<name>``), so pages load nothing from
a third party and the Content-Security-Policy stays ``img-src 'self'``. Colours become
CSS custom properties in ``/branding/theme.css`` (``style-src 'self'``, no inline
style); a primary colour that white text cannot be read on (WCAG 2.1 AA: 4.5:1) is a
configuration error. The support contact (phone, opening hours, e-mail) and the footer
links (terms, privacy, help) are shown in the footer of every page and on the pages
that would otherwise leave someone stuck.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, Response, abort, current_app, url_for

from idp.core.i18n import localized

MAX_IMAGE_BYTES = 512 * 1024
IMAGES = ("logo", "favicon", "itsme_mark", "eid_mark")
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
_STATIC = Path(__file__).resolve().parent.parent / "static"


@dataclass(frozen=True)
class Image:
    data: bytes
    mimetype: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.data).hexdigest()[:12]


def _sniff(data: bytes, allow_ico: bool) -> str | None:
    """The image type from the first bytes (never from the file name)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if allow_ico and data.startswith(b"\x00\x00\x01\x00"):
        return "image/vnd.microsoft.icon"
    head = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if (head.startswith(b"<svg") or head.startswith(b"<?xml")) and b"<svg" in data[:4096].lower():
        return "image/svg+xml"
    return None


def contrast_ratio(a: str, b: str) -> float:
    """WCAG 2.1 contrast ratio of two #rrggbb colours."""

    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@dataclass(frozen=True)
class BrandingSettings:
    """The ``[branding]`` table (every key optional)."""

    primary_color: str = "#0b5cad"
    text_color: str = "#1d2430"
    background_color: str = "#f4f6f9"
    support_phone: str | None = None
    support_hours: dict[str, str] = field(default_factory=dict)
    support_email: str | None = None
    terms_url: str | None = None
    privacy_url: str | None = None
    help_url: str | None = None
    timezone: str = "Europe/Brussels"  # dates on the pages (sessions in the account page)
    images: dict[str, Image] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_table(cls, t) -> BrandingSettings:
        d = cls()
        colours = {}
        for key in ("primary_color", "text_color", "background_color"):
            value = t.str(key, getattr(d, key))
            if value is not None and not _HEX.match(value):
                t.error(key, "must be a colour written #rrggbb")
                value = getattr(d, key)
            colours[key] = value
        for key, against in (("primary_color", "#ffffff"), ("text_color", colours["background_color"])):
            if contrast_ratio(colours[key], against) < 4.5:
                t.error(key, f"contrast with {against} is below 4.5:1 (WCAG 2.1 AA)")
        images = {}
        for key in IMAGES:
            path = t.path_value(key, None)
            if path is None or not path.is_file():
                continue
            data = path.read_bytes()
            mimetype = _sniff(data, allow_ico=key == "favicon")
            if len(data) > MAX_IMAGE_BYTES:
                t.error(key, f"larger than {MAX_IMAGE_BYTES // 1024} KiB")
            elif mimetype is None:
                t.error(key, "must be an SVG or PNG file" + (" (or ICO)" if key == "favicon" else ""))
            else:
                images[key] = Image(data, mimetype)
        email = t.str("support_email", None)
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            t.error("support_email", "must be an e-mail address")
        links = {}
        for key in ("terms_url", "privacy_url", "help_url"):
            value = t.str(key, None)
            if value is not None and not value.startswith(("https://", "http://", "/")):
                t.error(key, "must be an http(s) URL or a path on this server")
            links[key] = value
        zone = t.str("timezone", d.timezone)
        try:
            ZoneInfo(zone or d.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            t.error("timezone", "must be an IANA time zone such as Europe/Brussels")
            zone = d.timezone
        hours = t.messages("support_hours")
        phone = t.str("support_phone", None)
        t.finish()
        return cls(
            **colours,
            support_phone=phone,
            support_hours=hours,
            support_email=email,
            timezone=zone or d.timezone,
            images=images,
            **links,
        )


def branding() -> BrandingSettings:
    return current_app.extensions["idp.settings"].sections.get("branding") or BrandingSettings()


def image_url(name: str) -> str | None:
    image = branding().images.get(name)
    return url_for("branding.image", name=name, v=image.version) if image else None


def support_contact() -> dict | None:
    """The support contact in the page's language, None when the operator set none."""
    b = branding()
    if not (b.support_phone or b.support_email):
        return None
    phone = b.support_phone
    return {
        "phone": phone,
        "phone_href": "tel:" + re.sub(r"[^0-9+]", "", phone) if phone else None,
        "hours": localized(b.support_hours),
        "email": b.support_email,
    }


def theme_css(b: BrandingSettings) -> str:
    return f":root {{ --accent: {b.primary_color}; --fg: {b.text_color}; --bg: {b.background_color}; }}\n"


def init_app(app: Flask) -> None:
    @app.route("/branding/theme.css", endpoint="branding.theme")
    def _theme():
        response = Response(theme_css(branding()), mimetype="text/css")
        response.cache_control.max_age = 3600
        return response

    @app.route("/branding/<name>", endpoint="branding.image")
    def _image(name: str):
        image = branding().images.get(name)
        if image is None:
            abort(404)
        response = Response(image.data, mimetype=image.mimetype)
        response.cache_control.max_age = 86400
        return response

    @app.route("/favicon.ico", endpoint="branding.favicon")
    def _favicon():
        image = branding().images.get("favicon")
        if image is None:
            response = Response((_STATIC / "favicon.svg").read_bytes(), mimetype="image/svg+xml")
        else:
            response = Response(image.data, mimetype=image.mimetype)
        response.cache_control.max_age = 86400
        return response

    @app.context_processor
    def _brand():
        b = branding()
        return {
            "brand": {
                "logo": image_url("logo"),
                "itsme_mark": image_url("itsme_mark"),
                "eid_mark": image_url("eid_mark"),
                "terms_url": b.terms_url,
                "privacy_url": b.privacy_url,
                "help_url": b.help_url,
                "support": support_contact(),
            }
        }
