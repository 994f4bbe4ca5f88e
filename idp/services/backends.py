"""External services chosen by configuration: the SMS gateway and the mailer.

Each is an interface with a real and a development implementation (see
:mod:`idp.services.sms`, :mod:`idp.services.mail`); development backends are refused in
production by the settings validation and again here.
"""

from __future__ import annotations

from flask import Flask

from idp.services.mail import make_mailer
from idp.services.sms import make_sms_gateway


def init_app(app: Flask) -> None:
    settings = app.extensions["idp.settings"]
    app.extensions["idp.sms"] = make_sms_gateway(settings.sms, production=settings.production)
    app.extensions["idp.mail"] = make_mailer(settings.mail, production=settings.production)
