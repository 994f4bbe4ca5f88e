"""Logging a person in: the login transaction, the method chooser, each method's pages
(password, itsme, eID, contract number), the second factor (SMS, TOTP), required actions
and lockout. May import :mod:`idp.accounts`, :mod:`idp.services` and :mod:`idp.core`.
"""
