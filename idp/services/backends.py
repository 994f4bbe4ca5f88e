"""External services chosen by configuration: password hashing, SMS gateway, mailer.

Each is an interface with a real and a development implementation (see
:mod:`idp.sms`, :mod:`idp.mail`); development backends are refused in
production by the settings validation and again here.
"""

from __future__ import annotations

from flask import Flask

from idp.accounts.passwords import Passwords
from idp.services.mail import make_mailer
from idp.services.sms import make_sms_gateway


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.passwords"] = Passwords(settings.passwords)
    app.extensions["idp.sms"] = make_sms_gateway(settings.sms, production=settings.production)
    app.extensions["idp.mail"] = make_mailer(settings.mail, production=settings.production)
