"""WSGI entry point for gunicorn: ``IDP_CONFIG=/etc/idp/idp.toml gunicorn idp.wsgi:app``.

It lives in the package so that it works from an installed wheel, not only
from a checkout. A WSGI server is how the provider is deployed, so it never
falls back to the embedded development defaults (which show SMS codes on the
demo page): it needs a configuration file. ``idp serve`` is the way to run
those defaults.
"""

import os

from idp import create_app

if not os.environ.get("IDP_CONFIG"):
    raise SystemExit("IDP_CONFIG is not set: name the provider's TOML file (see docs/operator-guide.md)")

app = create_app()
