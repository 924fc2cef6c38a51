"""Speed of batch top-k recommendation (pytest-benchmark).

    pytest bench/bench_recommend.py --benchmark-only

Random factors, so that no data set is needed:

* ML-100k size: 943 users x 1682 items, k = 64, n = 10, filtering ~100k
  training interactions -- target: under 50 ms once compiled.
* 100k users x 27k items, k = 64, n = 10, filtering 1M interactions -- target: under
  10 s on 2 cores (measured: 5.5 s).  Skipped unless FASTALS_BENCH_LARGE=1.

Measured numbers are in docs/accuracy.md.
"""

import os

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS


def _model(n_users, n_items, k, nnz, seed=0):
    rng = np.random.default_rng(seed)
    model = FastALS(factors=k)
    model.user_factors = rng.standard_normal((n_users, k)).astype(np.float32)
    model.item_factors = rng.standard_normal((n_items, k)).astype(np.float32)
    model.user_ids = model.item_ids = None
    model.use_bias = False
    u = rng.integers(0, n_users, nnz)
    i = rng.integers(0, n_items, nnz)
    ui = sp.csr_matrix((np.ones(nnz), (u, i)), shape=(n_users, n_items))
    ui.sum_duplicates()
    ui.sort_indices()
    model._remember_training(ui)
    return model


def test_recommend_ml100k_size(benchmark):
    model = _model(943, 1682, 64, 100_000)
    users = np.arange(943)
    model.recommend(users, n=10)                     # compile
    ids, _ = benchmark(model.recommend, users, 10)
    assert ids.shape == (943, 10)


@pytest.mark.skipif(os.environ.get("FASTALS_BENCH_LARGE") != "1",
                    reason="set FASTALS_BENCH_LARGE=1 (100k x 27k, several seconds)")
def test_recommend_100k_users_27k_items(benchmark):
    model = _model(100_000, 27_000, 64, 1_000_000)
    users = np.arange(100_000)
    model.recommend(users[:10], n=10)
    ids, _ = benchmark.pedantic(model.recommend, (users, 10), rounds=1, iterations=1)
    assert ids.shape == (100_000, 10)
