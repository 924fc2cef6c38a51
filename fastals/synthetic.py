"""Compatibility alias: the synthetic data now live in :mod:`fastals.data.synthetic`."""

from .data.synthetic import ML100K_SHAPE, make_ratings  # noqa: F401

__all__ = ["make_ratings", "ML100K_SHAPE"]
