"""The numpy top-k for a few rows (``kernels.topk._topk_few``, what a first
``recommend`` runs) against the compiled tile kernel: same ids and scores,
ties to the lower position, exclusions, candidate subsets, short rows."""

import numpy as np
import pytest

from fastals.kernels import topk as T


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("subset", [False, True])
def test_few_rows_equal_the_kernel(dtype, subset):
    rng = np.random.default_rng(1)
    m, nc, k = 20, 300, 6
    # small integers: exact scores and many ties
    U = rng.integers(-2, 3, (m, k)).astype(dtype)
    V = rng.integers(-2, 3, (nc, k)).astype(dtype)
    rows = rng.integers(0, m, 9).astype(np.int64)
    pos = np.zeros(0, np.int64)
    Vc = V
    if subset:
        cand = np.sort(rng.choice(nc, 120, replace=False))
        Vc = np.ascontiguousarray(V[cand])
        pos = np.full(nc, -1, np.int64)
        pos[cand] = np.arange(cand.size)
    counts = rng.integers(0, 40, rows.size)
    counts[0] = nc  # every item excluded: only padding
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    indices = np.concatenate([np.sort(rng.choice(nc, c, replace=False))
                              for c in counts]).astype(np.int32)
    for n in (1, 7, Vc.shape[0]):
        want = [np.empty((rows.size, n), np.int64), np.empty((rows.size, n), dtype)]
        T._topk_rows(U, rows, 0, rows.size, Vc, n, indptr, indices, pos, *want, False)
        got = [np.empty_like(want[0]), np.empty_like(want[1])]
        T._topk_few(U, rows, Vc, n, indptr, indices, pos, *got)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        assert (got[0][0] == -1).all() and np.isneginf(got[1][0]).all()


def test_public_topk_takes_the_few_rows_path():
    rng = np.random.default_rng(2)
    U = rng.standard_normal((5, 8)).astype(np.float32)
    V = rng.standard_normal((50, 8)).astype(np.float32)
    rows = np.arange(5, dtype=np.int64)
    ids, scores = T.topk(U, rows, V, 4)
    ref = np.argsort(-(U @ V.T), axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(U @ V.T, ref, 1), rtol=1e-6)
