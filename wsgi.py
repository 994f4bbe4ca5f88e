"""WSGI entry point: ``gunicorn wsgi:app`` (configuration from IDP_CONFIG)."""

from idp import create_app

app = create_app()
