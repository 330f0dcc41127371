"""The library version (one place, read by the package, the CLI and result keys)."""

__version__ = "0.1.0"
