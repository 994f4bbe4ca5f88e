"""Languages of the hosted pages: French, Dutch, German and English (Flask-Babel).

The language is, in order: the one picked on the page (kept in the browser
session), the first supported ``ui_locales`` value of the authorization
request, the best ``Accept-Language`` match, and the configured default.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask, current_app, g, redirect, request, session
from flask_babel import Babel, get_locale
from flask_wtf.csrf import validate_csrf

from idp.core.security import local_path

LANGUAGE_NAMES = {"fr": "Français", "nl": "Nederlands", "de": "Deutsch", "en": "English"}


def pick_from_ui_locales(ui_locales: str | None, supported) -> str | None:
    for tag in (ui_locales or "").split():
        base = tag.split("-")[0].lower()
        if base in supported:
            return base
    return None


def localized(messages: Mapping[str, str]) -> str | None:
    """An operator's text in the page's language, else in the default language, else any; None if none."""
    if not messages:
        return None

    default = current_app.extensions["idp.settings"].default_language
    return messages.get(str(get_locale())) or messages.get(default) or next(iter(messages.values()))


def select_locale() -> str:

    settings = current_app.extensions["idp.settings"]
    supported = settings.languages
    chosen = session.get("lang") if request else None
    if chosen in supported:
        return chosen
    if g.get("ui_locale") in supported:
        return g.ui_locale
    from_query = pick_from_ui_locales(request.args.get("ui_locales"), supported)
    if from_query:
        return from_query
    return request.accept_languages.best_match(supported) or settings.default_language


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale, default_translation_directories="translations")

    @app.route("/lang/<code>", methods=["POST"])
    def set_language(code: str):

        validate_csrf(request.form.get("csrf_token"))
        if code in app.extensions["idp.settings"].languages:
            session["lang"] = code

        return redirect(local_path(request.form.get("next")), 303)

    @app.context_processor
    def _languages():

        langs = app.extensions["idp.settings"].languages
        return {"languages": [(c, LANGUAGE_NAMES[c]) for c in langs], "current_language": str(get_locale())}
