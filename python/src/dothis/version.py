"""The package version, importable from every layer without importing the public API."""

__version__ = "1.0.0"
