"""The ground floor: settings, storage and migrations, the shared key-value store,
SSO sessions, audit, errors, security headers and languages.

Imports nothing from the other ``idp`` sub-packages; every one of them may import it.
"""
