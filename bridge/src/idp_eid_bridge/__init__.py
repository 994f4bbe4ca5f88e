"""The eID bridge: lets a web login page use a Belgian eID card on this computer (see docs/bridge.md)."""

VERSION = "1.0.0"
__version__ = VERSION
