"""Deterministic synthetic rating data with a planted low-rank structure.

:func:`make_ratings` draws (user, item) pairs with Zipf-like user activity
and item popularity, and gives each pair a 1-5 star rating from a planted
rank-``rank`` model plus noise (or, with ``implicit=True``, a positive
interaction count).  Everything is vectorized numpy and works in
``O(n_ratings)`` memory: no users x items array is ever formed, so 20M
interactions over 140k users x 27k items take a few seconds and about
1.5 GB at peak.  The same arguments and seed always give the same data.
"""

import numpy as np

from .ratings import Ratings
from ..exceptions import InputError

__all__ = ["make_ratings", "ML100K_SHAPE"]

#: (users, items, ratings) of MovieLens-100k, the default shape.
ML100K_SHAPE = (943, 1682, 100_000)

_CHUNK = 1 << 20


def _popularity(n, exponent, rng):
    """Zipf-like weights ``(rank + 1) ** -exponent`` in a random order."""
    w = (np.arange(1, n + 1, dtype=np.float64)) ** -float(exponent)
    w = w[rng.permutation(n)]
    return w / w.sum()


def _draw(rng, p, size):
    """``size`` indices drawn with probabilities ``p``, in random order."""
    return rng.permutation(_draw_sorted(rng, p, size))


def _draw_sorted(rng, p, size):
    """``size`` indices drawn with probabilities ``p``, sorted.

    One multinomial draw of the counts and a repeat: O(len(p) + size), no
    per-draw binary search.
    """
    counts = rng.multinomial(size, p)
    return np.repeat(np.arange(p.size, dtype=np.int64), counts)


def make_ratings(n_users=943, n_items=1682, n_ratings=100_000, rank=10,
                 noise=0.5, user_exponent=0.6, item_exponent=0.9,
                 implicit=False, seed=0):
    """Synthetic ratings, deterministic from ``seed``.

    Parameters
    ----------
    n_users, n_items, n_ratings : int
        Shape and number of distinct (user, item) pairs.  The defaults are
        MovieLens-100k's (943 x 1682, 100,000 ratings).  Every user and every
        item gets at least one rating when ``n_ratings >= n_users + n_items``.
    rank : int
        Rank of the planted structure.
    noise : float
        Standard deviation of the Gaussian noise added to the planted score
        (in stars) before rounding.
    user_exponent, item_exponent : float
        Exponents ``s`` of the Zipf-like activity / popularity: the ``r``-th
        most active user is drawn with weight ``r ** -s`` (0 = uniform).
        Heavy heads are capped by the number of distinct pairs available.
    implicit : bool
        ``False``: integer stars 1-5, from ``3.5 + score + noise`` rounded and
        clipped.  ``True``: interaction counts >= 1, Poisson with mean
        ``exp(score + noise)``.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    fastals.data.Ratings
        ``int32`` user and item ids ``0..n-1``, ``float64`` values, sorted by
        (user, item); ``timestamps`` is None.
    """
    for name, v in (("n_users", n_users), ("n_items", n_items),
                    ("n_ratings", n_ratings), ("rank", rank)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    for name, v in (("noise", noise), ("user_exponent", user_exponent),
                    ("item_exponent", item_exponent)):
        if not np.isfinite(v) or v < 0:
            raise InputError(f"{name} must be a finite number >= 0, got {v!r}")
    m, n, nnz = int(n_users), int(n_items), int(n_ratings)
    if nnz > m * n // 2:
        raise InputError(f"n_ratings={nnz} is more than half of the {m} x {n} "
                         "cells; use fewer ratings or more users/items")
    rng = np.random.default_rng(seed)
    pu = _popularity(m, user_exponent, rng)
    pi = _popularity(n, item_exponent, rng)

    # Coverage: one pair per user and one per item, partners by popularity.
    if nnz >= m + n:
        keys = _sorted_unique(np.concatenate([
            np.arange(m, dtype=np.int64) * n + _draw(rng, pi, m),
            _draw(rng, pu, n).astype(np.int64) * n + np.arange(n, dtype=np.int64)]))
    else:
        keys = np.empty(0, np.int64)
    fresh = 0.8  # expected share of new pairs among draws, measured per round
    for _ in range(200):
        need = nnz - keys.size
        if need <= 0:
            break
        size = int(need / max(fresh, 0.02) * 1.1) + 1000
        # users sorted, items shuffled: independent pairs, one shuffle only
        draws = _draw_sorted(rng, pu, size) * n + _draw(rng, pi, size)
        new = _sorted_unique(draws)
        new = new[~_isin_sorted(new, keys)]
        fresh = max(new.size / size, 1e-3)
        if new.size > need:
            new = np.sort(rng.choice(new, need, replace=False))
        # Both runs are sorted: a stable sort merges them in linear time.
        keys = np.sort(np.concatenate([keys, new]), kind="stable")
    else:
        raise InputError("could not draw enough distinct pairs; lower the "
                         "exponents or n_ratings")
    if keys.size > nnz:  # coverage pairs alone exceeded n_ratings
        keys = np.sort(rng.choice(keys, nnz, replace=False))
    users = (keys // n).astype(np.int32)
    items = (keys % n).astype(np.int32)
    del keys

    scale = 1.0 / np.sqrt(np.sqrt(rank))  # entries with variance 1/sqrt(rank)
    U = rng.standard_normal((m, rank)) * scale
    V = rng.standard_normal((n, rank)) * scale
    values = np.empty(nnz, np.float64)
    for a in range(0, nnz, _CHUNK):
        b = min(a + _CHUNK, nnz)
        score = np.einsum("ij,ij->i", U[users[a:b]], V[items[a:b]])
        score += noise * rng.standard_normal(b - a)
        if implicit:
            values[a:b] = 1 + rng.poisson(np.exp(np.minimum(score, 8.0)))
        else:
            values[a:b] = np.clip(np.rint(3.5 + score), 1, 5)
    return Ratings(users, items, values, None)


def _sorted_unique(x):
    """Sorted distinct values (``np.unique`` by sorting, faster on int64)."""
    x = np.sort(x)
    if x.size:
        x = x[np.concatenate(([True], x[1:] != x[:-1]))]
    return x


def _isin_sorted(x, sorted_keys):
    """``np.isin`` for a sorted, unique ``sorted_keys``."""
    if sorted_keys.size == 0:
        return np.zeros(x.size, bool)
    pos = np.searchsorted(sorted_keys, x)
    pos = np.minimum(pos, sorted_keys.size - 1)
    return sorted_keys[pos] == x
