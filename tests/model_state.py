"""Bitwise snapshots of a model's attributes, for all-or-nothing checks.

``snapshot(model)`` copies every attribute (arrays, sparse matrices, lists,
scalars); ``assert_unchanged(model, snap)`` checks that every attribute is
still there, with the same type, dtype, shape and bytes.  Derived caches
(``_recommend_cache``) are left out: they are rebuilt from the attributes.
"""

import copy

import numpy as np
import scipy.sparse as sp

CACHES = ("_recommend_cache",)


def _freeze(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if sp.issparse(value):
        csr = value
        return ("sparse", type(value).__name__, value.shape,
                tuple(_freeze(getattr(csr, a)) for a in ("data", "indices", "indptr")))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, float):
        return ("float", np.float64(value).tobytes())
    if callable(value) or isinstance(value, type):
        return ("ref", id(value))
    return ("value", copy.deepcopy(value))


def snapshot(model):
    """Frozen, comparable copy of every attribute of ``model``."""
    return {k: _freeze(v) for k, v in vars(model).items() if k not in CACHES}


def assert_unchanged(model, snap):
    now = snapshot(model)
    assert now.keys() == snap.keys(), (sorted(now.keys() ^ snap.keys()))
    for key in snap:
        assert now[key] == snap[key], f"attribute {key} changed"
