"""Outbound messages: SMS and e-mail (interface + real and development backends),
notifications built on them. May import :mod:`idp.core` only.
"""
