"""Messages to people: e-mails rendered in the recipient's language, and links in them.

Every e-mail has a text and an HTML part rendered from
``templates/email/<name>.txt`` and ``<name>.html`` (the first line of the text
template is the subject). Links are built from the configured issuer, never
from the request's Host header (NIST SP 800-63B, OWASP ASVS V5).
"""

from __future__ import annotations

import logging

from flask import current_app, render_template
from flask_babel import force_locale

from idp.services import queue

log = logging.getLogger(__name__)


def external_url(path: str) -> str:
    """An absolute link for a message: the issuer plus ``path`` (which must start with /)."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("path must be absolute within the provider")
    return current_app.extensions["idp.settings"].issuer + path


def send_email(to: str, template: str, lang: str | None = None, **context) -> bool:
    """Render in the recipient's language and queue for the worker (:mod:`idp.services.queue`).

    Returns True once queued: delivery happens after the request, with retries."""
    settings = current_app.extensions["idp.settings"]
    lang = lang if lang in settings.languages else settings.default_language
    context.setdefault("service_name", settings.service_name)
    with force_locale(lang):
        text = render_template(f"email/{template}.txt", **context)
        html = render_template(f"email/{template}.html", **context)
    subject, _, body = text.partition("\n")
    queue.enqueue("email", to, {"subject": subject.strip(), "text": body.lstrip(), "html": html})
    return True
