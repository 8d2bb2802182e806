"""The package's version (one place: pyproject reads it, the package and MLmodel files
record it)."""

__version__ = "0.1.0"
