"""The package version (its own module: read by the model file writer)."""

__version__ = "0.1.0"
