"""Login methods behind one small interface (see :mod:`connectors.base`).

Connectors turn a browser interaction into an :class:`connectors.base.Identity`
or raise a :class:`connectors.base.ConnectorError`. They never touch the
provider's database, Flask globals or tokens; what they need from the host is
passed in.
"""
