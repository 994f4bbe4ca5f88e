"""The OpenID Connect provider proper: Authlib wiring, authorize, token (+ its store),
userinfo, discovery, logout, claims, clients and signing keys. May import :mod:`idp.login`
and everything below it.
"""
