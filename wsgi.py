"""Checkout shortcut for ``gunicorn wsgi:app``; the entry point is :mod:`idp.wsgi`."""

from idp.wsgi import app  # noqa: F401
