"""Data sets for the benchmarks: MovieLens-100k and synthetic implicit sets.

The synthetic set is generated here, deterministically from a seed, and
cached as ``.npz`` outside the repository (``$FASTALS_BENCH_CACHE``, else
``$XDG_CACHE_HOME/fastals-bench``, else ``~/.cache/fastals-bench``).

Shape of the full set: 20M distinct (user, item) pairs over 140k users x
27k items, drawn by the package's generator :func:`fastals.make_ratings`
with ``implicit=True`` (Zipf-like user activity and item popularity, values
are interaction counts >= 1) and its default exponents.

The short-row set ``short3M`` (issue 14) has the usual shape of real logs,
most users with few interactions: 150k users x 30k items, 2.7M pairs
(18 per user on average, far fewer for most), user activity ``rank^-0.6``
and item popularity ``rank^-0.9``, the same generator and seed.
"""

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent

#: name -> (users, items, target interactions)
SIZES = {
    "75M": (480_000, 17_700, 75_000_000),  # Netflix-sized (issue 14)
    "20M": (140_000, 27_000, 20_000_000),
    "2M": (14_000, 8_000, 2_000_000),
    "200k": (3_000, 2_000, 200_000),
    "short3M": (150_000, 30_000, 2_700_000),
}

#: name -> (user exponent, item exponent) where not the generator's defaults
EXPONENTS = {"short3M": (0.6, 0.9)}


def cache_dir():
    env = os.environ.get("FASTALS_BENCH_CACHE")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        path = Path(base) / "fastals-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def synthetic_implicit(n_users, n_items, n_interactions, seed=0, exponents=None):
    """CSR (users x items) of interaction counts from
    :func:`fastals.make_ratings` (``implicit=True``): Zipf-like user activity
    and item popularity (``exponents``: ``(user, item)``, default the
    generator's), exactly ``n_interactions`` distinct pairs."""
    from fastals.data.synthetic import make_ratings
    kw = {}
    if exponents is not None:
        kw = dict(user_exponent=exponents[0], item_exponent=exponents[1])
    r = make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_interactions,
                     implicit=True, seed=seed, **kw)
    R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)), shape=(n_users, n_items))
    R.sort_indices()
    return R


def synthetic(size="20M", seed=0):
    """The cached synthetic set of ``SIZES[size]``, generated on first use."""
    m, n, nnz = SIZES[size]
    path = cache_dir() / f"implicit-{size}-seed{seed}-make_ratings-v1.npz"
    if path.is_file():
        return sp.load_npz(path).tocsr()
    R = synthetic_implicit(m, n, nnz, seed=seed, exponents=EXPONENTS.get(size))
    tmp = path.with_suffix(".tmp.npz")
    sp.save_npz(tmp, R, compressed=False)
    os.replace(tmp, path)
    return R


def ml100k_path():
    env = os.environ.get("FASTALS_DATA")
    root = Path(env) if env else HERE.parent.parent / "shared" / "data"
    return root / "ml-100k" / "ua.base"


def ml100k():
    """MovieLens-100k ``ua.base`` as a 943 x 1682 CSR of ratings, or None."""
    path = ml100k_path()
    if not path.is_file():
        return None
    d = np.loadtxt(path, dtype=np.int64)
    return sp.csr_matrix((d[:, 2].astype(np.float64), (d[:, 0] - 1, d[:, 1] - 1)),
                         shape=(943, 1682))


def ml100k_dense_sides(k):
    """``(R, users, items, X, Y)`` for timing the dense objective's parts on
    MovieLens-100k: both orientations as the fit prepares them (float32,
    ``k`` factors, targets the ratings) and small random factors (seed 0);
    None where the data is absent.  Imports the ``fastals`` the caller has
    imported (a benchmark child runs its own tree's)."""
    from fastals import _dense
    from fastals._input import transpose_csr
    from fastals.model import _Side
    R = ml100k()
    if R is None:
        return None
    users = _Side(R.tocsr(), k, np.dtype(np.float32))
    items = _Side(transpose_csr(R.tocsr()), k, np.dtype(np.float32))
    for s in (users, items):
        s.target = s.data.astype(np.float32)
        _dense.prepare(s, k)
    rng = np.random.default_rng(0)
    X = (rng.random((R.shape[0], k)) * 0.1).astype(np.float32)
    Y = (rng.random((R.shape[1], k)) * 0.1).astype(np.float32)
    return R, users, items, X, Y
