"""Accounts and what hangs off them: local accounts and usernames, customer records,
linking of federated identities, password hashing. May import :mod:`idp.core` and
:mod:`idp.services`.
"""
