"""The package's version, where every layer may read it (pyproject.toml holds the same)."""

__version__ = "0.1.0"
