"""CG on factors held in rotated bases (``kernels.cg.solve_cg_held``) and
the implicit CG fit loop that keeps them there between half-steps
(``fastals._cg_basis``).

Kernel: with ``X = X_0 Bx``, ``Y = Y_0 By`` (random orthogonal bases) and
the Gram matrix of ``Y`` as held, the solved rows must be the naive CG's
rows of ``X_0`` (``tests/naive.py``) in the returned basis, or in the
original one with ``out=True``; rows with 0, 1, k-1, k and k+1 ratings,
both dtypes.  Fit: what a callback reads from the model mid-fit, the
losses, an early stop, a pickle taken in the callback and the final factors
equal those of the same fit without the shortcut, to rounding (``1e-9``
float64, ``2e-3`` float32, relative to the largest entry, as in
``tests/test_cg_blocks.py``); bitwise equal across thread counts.
"""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import FastALS, _cg_basis
from fastals.exceptions import NumericalError
from fastals.kernels import cg as kcg
from test_cg_blocks import TOL, edge_counts, problem, reference

DTYPES = (np.float64, np.float32)


def orthogonal(rng, k):
    return np.linalg.qr(rng.standard_normal((k, k)))[0]


def close(a, b, dtype):
    scale = max(float(np.abs(b).max()), 1e-30)
    assert float(np.abs(np.asarray(a, float) - b).max()) <= TOL[dtype] * scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_rotate_rows_is_the_product(dtype):
    rng = np.random.default_rng(3)
    for n, k in ((37, 16), (300, 5), (4, 1)):
        F = rng.standard_normal((n, k)).astype(dtype)
        M = rng.standard_normal((k, k)).astype(dtype)
        close(kcg.rotate_rows(F, M), F.astype(float) @ M, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("held", ["x", "y", "both"])
def test_solve_in_held_bases_matches_naive_cg(dtype, held):
    k, steps, lam, w0 = 16, 3, 0.1, 1.0
    rng = np.random.default_rng(5)
    counts = edge_counts(k, 40, rng, 2 * k + 3)
    side, conf, target, offset, Y, G, X0 = problem(k, dtype, counts, 60, seed=2)
    want = reference(side, conf, target, offset, Y, X0, lam, False, w0, steps)
    Bx = orthogonal(rng, k) if held in ("x", "both") else None
    By = orthogonal(rng, k) if held in ("y", "both") else None
    Xh = X0 if Bx is None else (X0.astype(float) @ Bx).astype(dtype)
    Yh = Y if By is None else (Y.astype(float) @ By).astype(dtype)
    Gh = (Yh.astype(float).T @ Yh).astype(dtype)
    dt = np.dtype(dtype).type
    for out in (False, True):
        X = Xh.copy()
        C = kcg.solve_cg_held(side.indptr, side.indices, conf, target, offset, Yh,
                              Gh, dt(lam), False, dt(w0), X, side.bounds, steps,
                              (Bx, By), out, np.empty_like(Yh))
        if out:
            assert C is None
        else:
            assert np.allclose(C.T @ C, np.eye(k), atol=1e-5)
            X = X.astype(float) @ C.T
        close(X, want, dtype)


def _ratings(seed=1, m=120, n=70):
    R = sp.random(m, n, density=0.08, random_state=seed, format="csr")
    R.data = np.ceil(R.data * 5)
    return R


def _fit(R, dtype, plain, monkeypatch, stop_at=None, **kw):
    """A fit recording what its callback reads; ``plain``: without the
    shortcut (every half-step rotated back, as before)."""
    seen, pending = [], []
    model = FastALS(objective="implicit", solver="cg", factors=8, iterations=4,
                    regularization=0.1, random_state=0, dtype=dtype, **kw)

    def cb(epoch, loss, seconds):
        pending.append(_cg_basis.PENDING in vars(model))
        state = {n: v for n, v in model.__getstate__().items() if n != "callback"}
        seen.append((loss, model.user_factors.copy(), model.item_factors.copy(),
                     pickle.loads(pickle.dumps(state))["item_factors"]))
        return epoch == stop_at
    model.callback = cb
    with monkeypatch.context() as mp:
        if plain:
            mp.setattr(_cg_basis, "applies", lambda m: False)
        model.fit(R)
    # the shortcut taken (factors held rotated after every epoch but the
    # last) or not at all
    assert pending == [not plain and e < 4 for e in range(1, len(seen) + 1)]
    return model, seen


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stop_at,kw", [(None, {}), (2, {}),
                                        (None, {"weighted_regularization": True})])
def test_fit_in_held_bases_matches_plain_fit(dtype, stop_at, kw, monkeypatch):
    R = _ratings()
    a, seen = _fit(R, dtype, False, monkeypatch, stop_at, **kw)
    b, seen0 = _fit(R, dtype, True, monkeypatch, stop_at, **kw)
    assert len(seen) == len(seen0) == (stop_at or 4)
    for (la, ua, ia, pa), (lb, ub, ib, pb) in zip(seen, seen0):
        assert la == pytest.approx(lb, rel=1e-9 if dtype == np.float64 else 1e-5)
        close(ua, ub, dtype)
        close(ia, ib, dtype)
        close(pa, pb, dtype)
    close(a.user_factors, b.user_factors, dtype)
    close(a.item_factors, b.item_factors, dtype)
    assert a.user_factors.dtype == dtype and "_pending_factors" not in vars(a)


def test_fit_in_held_bases_is_bitwise_the_same_for_any_thread_count():
    R = _ratings(seed=4, m=300, n=90)
    fits = [FastALS(objective="implicit", solver="cg", factors=16, iterations=3,
                    random_state=0, num_threads=t, calculate_training_loss=False,
                    dtype=np.float32).fit(R) for t in (1, 2)]
    assert np.array_equal(fits[0].user_factors, fits[1].user_factors)
    assert np.array_equal(fits[0].item_factors, fits[1].item_factors)


def test_non_finite_factors_in_held_bases_raise(monkeypatch):
    solve = kcg.solve_cg_held

    def broken(*args, **kw):
        basis = solve(*args, **kw)
        args[10][3, 1] = np.nan  # X
        return basis
    monkeypatch.setattr(kcg, "solve_cg_held", broken)
    model = FastALS(objective="implicit", solver="cg", factors=8, iterations=2)
    with pytest.raises(NumericalError, match="NaN or infinite"):
        model.fit(_ratings())
    assert not hasattr(model, "user_factors")
