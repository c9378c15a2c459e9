"""The version, one source: the package metadata (setup.cfg) and every record read it here."""

__version__ = "0.1.0"
