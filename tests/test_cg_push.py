"""The push form of the CG half-step (``fastals.kernels.cg_push``): the
longest rows solved in lockstep, their entries taken in the order of the
other side's rows, beside the gather form for the other rows.

Against the naive row-at-a-time CG of ``tests/naive.py`` (tolerances
``1e-9`` in float64 and ``2e-3`` in float32 times the largest magnitude of
the reference, as ``test_cg_blocks.py``): rows with 0, 1, k-1, k and k+1
ratings, confidences below, at and above the unobserved weight, weighted
regularization, biases, 0 to 3 steps, rows stopping at once on a zero
right-hand side.  Against the gather form on the same inputs (``1e-12``
in float64, ``1e-5`` in float32, relative); bitwise identical across
block counts and thread counts; a fit with every row pushed equals a fit
with none (``1e-9`` relative, float64).

    python -m pytest tests/test_cg_push.py
"""

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS
from fastals import kernels as K
from fastals.kernels import cg_push as kp

from test_cg_blocks import CASES, TOL, edge_counts, problem, reference, run


def push(side, conf, target, offset, Y, G, X0, lam, wr, w0, steps, above,
         n_blocks=kp.PUSH_BLOCKS):
    """The split half-step with the rows of more than ``above`` entries
    pushed (in ``n_blocks`` blocks), the others gathered."""
    dt = Y.dtype.type
    sel = np.flatnonzero(side.counts > above)
    layout = kp.PushLayout(side.indptr, side.indices, sel, n_blocks)
    X = X0.copy()
    kp.solve_cg_split(side.indptr, side.indices, conf, target, offset, Y, G,
                      dt(lam), wr, dt(w0), X, side.bounds, steps,
                      (layout, layout.take(conf), layout.take(target)))
    return X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", sorted(CASES))
def test_push_against_naive_cg(dtype, case):
    """Every non-empty row pushed (``above = 0``) and the rows of more than
    k entries pushed, the others gathered, against the naive CG; 0-3
    steps; rows with a zero right-hand side stop at once and keep their
    (zero) start."""
    w0, wr, bias = CASES[case]
    k, m = 12, 70
    counts = edge_counts(k, m, np.random.default_rng(5), 24)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 50, seed=5,
                                                   w0=w0, bias=bias)
    still = np.zeros(m, bool)
    still[6::9] = True
    target[still[np.repeat(np.arange(m), counts)]] = 0
    X0[still] = 0
    if not bias:
        offset[:] = 0  # else a zero target is no zero right-hand side
    lam = 0.3
    for steps in range(4):
        want = reference(side, conf, target, offset, Y, X0, lam, wr, w0, steps)
        scale = np.abs(want).max()
        for above in (0, k):
            got = push(side, conf, target, offset, Y, G, X0, lam, wr, w0, steps,
                       above)
            assert np.isfinite(got).all()
            assert (got[counts == 0] == 0).all()
            if not bias:
                assert (got[still] == 0).all()
            np.testing.assert_allclose(got, want, rtol=0, atol=TOL[dtype] * scale,
                                       err_msg=f"steps={steps} above={above}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_push_equals_gather_bitwise_across_blocks_and_threads(dtype):
    """k = 32 with rows around the pushed length: the split form equals the
    gather form to rounding, and is the same bit for bit for 1, 2 and 7
    blocks and for 1 and 2 threads."""
    k, m = 32, 150
    counts = edge_counts(k, m, np.random.default_rng(6), 90)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 120, seed=6)
    gather = run(side, conf, target, offset, Y, G, X0, 0.2, True, 1.0,
                 side.bounds, K.USE_BLAS, 3)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    outs = []
    old = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            for n_blocks in (1, 2, 7):
                outs.append(push(side, conf, target, offset, Y, G, X0, 0.2, True,
                                 1.0, 3, 40, n_blocks))
    finally:
        numba.set_num_threads(old)
    np.testing.assert_allclose(outs[0], gather, rtol=0,
                               atol=tol * np.abs(gather).max())
    for got in outs[1:]:
        assert np.array_equal(got, outs[0])


def test_push_layout():
    """The layout holds each pushed row's entries once, grouped by block,
    then by the other side's row, then by row; ``take`` follows it."""
    R = sp.random(9, 30, density=0.4, random_state=7, format="csr")
    R.sort_indices()
    indptr, indices = R.indptr.astype(np.int64), R.indices.astype(np.int32)
    sel = np.array([1, 2, 5, 8])
    lay = kp.PushLayout(indptr, indices, sel, 3)
    assert lay.bounds[0] == 0 and lay.bounds[-1] == sel.size
    for b in range(lay.bounds.size - 1):
        e0, e1 = lay.ebounds[b], lay.ebounds[b + 1]
        assert ((lay.indices[e0:e1] >= lay.bounds[b])
                & (lay.indices[e0:e1] < lay.bounds[b + 1])).all()
        key = lay.rows[e0:e1] * 100 + lay.indices[e0:e1]
        assert (np.diff(key) > 0).all()
    want = sorted((sel[j], u) for j in range(sel.size)
                  for u in indices[indptr[sel[j]]:indptr[sel[j] + 1]])
    got = sorted(zip(sel[lay.indices], lay.rows))
    assert got == want
    np.testing.assert_array_equal(lay.take(R.data),
                                  R[sel[lay.indices], lay.rows].A1)


def test_gate_by_shape():
    """The fit pushes the rows the gather form reads in place only for
    512-byte vectors of the other side and factors over 32 MiB."""
    assert kp.push_above(128, 4, 150_000) == kp.LONG_GATHER_VALUES // 128
    assert kp.push_above(64, 8, 150_000) == kp.LONG_GATHER_VALUES // 64
    assert kp.push_above(64, 4, 150_000) == -1  # 256-byte vectors
    assert kp.push_above(128, 4, 27_000) == -1  # 14 MB of factors


def test_fit_push_equals_gather(monkeypatch):
    """An implicit CG fit (float64, weighted regularization) with every row
    pushed equals one with none pushed; the default pushes none here."""
    R = sp.random(200, 60, density=0.15, random_state=3, format="csr")
    R.data = np.ceil(R.data * 5)
    fits = {}
    for above in ("-1", "0", None):
        if above is None:
            monkeypatch.delenv("FASTALS_CG_PUSH_ABOVE", raising=False)
        else:
            monkeypatch.setenv("FASTALS_CG_PUSH_ABOVE", above)
        m = FastALS(objective="implicit", factors=8, iterations=3, solver="cg",
                    dtype=np.float64, weighted_regularization=True,
                    random_state=0).fit(R)
        fits[above] = m.user_factors @ m.item_factors.T
    scale = np.abs(fits["-1"]).max()
    np.testing.assert_allclose(fits["0"], fits["-1"], rtol=0, atol=1e-9 * scale)
    assert np.array_equal(fits[None], fits["-1"])
