"""The compiled CSR transpose of ``fit``'s set-up against SciPy's, and the
set-up shortcuts (checks without temporaries) against the plain ones."""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS, _input
from fastals.exceptions import InputError
from fastals.kernels import sparse as S


@pytest.mark.parametrize("shape,density", [((300, 40), 0.2), ((7, 900), 0.01),
                                           ((1, 5), 1.0), ((50, 60), 0.0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_transpose_equals_scipy(shape, density, threads):
    R = sp.random(*shape, density=density, format="csr", random_state=3)
    R.sort_indices()
    want = R.T.tocsr()
    want.sort_indices()
    old = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        ip, ix, d = S.transpose(R.indptr.astype(np.int64), R.indices.astype(np.int32),
                                R.data, shape[1])
    finally:
        numba.set_num_threads(old)
    assert ip.dtype == np.int64 and ix.dtype == np.int32
    np.testing.assert_array_equal(ip, want.indptr)
    np.testing.assert_array_equal(ix, want.indices)
    np.testing.assert_array_equal(d, want.data)


def test_transpose_csr_compiled_path(monkeypatch):
    R = sp.random(200, 70, density=0.1, format="csr", random_state=4)
    want = _input.transpose_csr(R)
    monkeypatch.setattr(_input, "COMPILED_TRANSPOSE_FROM", 0)
    got = _input.transpose_csr(R)
    assert got.shape == (70, 200) and got.has_sorted_indices
    for a in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, a), getattr(want, a))
    # a fit with the compiled transpose gives the same model bitwise
    m1 = FastALS(factors=4, iterations=2).fit(R)
    monkeypatch.setattr(_input, "COMPILED_TRANSPOSE_FROM", 1 << 60)
    m2 = FastALS(factors=4, iterations=2).fit(R)
    np.testing.assert_array_equal(m1.item_factors, m2.item_factors)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_canonical_csr_still_names_non_finite_values(bad):
    R = sp.random(20, 10, density=0.3, format="csr", random_state=5)
    R.data[3] = bad
    with pytest.raises(InputError, match="non-finite.*position 3"):
        _input.matrix_to_csr(R)


def test_too_large_for_float32_is_refused_either_sign():
    R = sp.random(20, 10, density=0.3, format="csr", random_state=5)
    R.data[2] = -1e39
    with pytest.raises(InputError, match="does not fit in float32"):
        FastALS(factors=2, iterations=1).fit(R)
