"""BayesianALS's implicit-feedback term (fastals.kernels.gibbs_implicit):
each kernel against a naive numpy reference, the draws of ``Z`` against the
exact Gaussian conditionals and the exact joint posterior, determinism,
persistence and the CLI flag (the MovieLens-100k accuracy with and without
the term: test_bayes.py::test_ml100k_ua_rmse_with_defaults).

Tolerances: kernels computing sums of products agree with numpy to 1e-12
(float64); Monte Carlo means of ``R`` independent draws within 5 standard
errors, covariance entries within 5 of their standard errors
``sqrt((C_ii C_jj + C_ij^2) / R)`` (as in test_bayes.py).
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import BayesianALS, load_model
from fastals.exceptions import InputError
from fastals.kernels import gibbs, gibbs_implicit as gi

Z_SE = 5.0


def _problem(seed=0, m=7, n=4, k=2, density=0.6):
    """A tiny model state: who rated what, the users' prior, Z's prior,
    the current Z and the effective user rows ``p``."""
    rng = np.random.default_rng(seed)
    w = k + 1
    R = rng.random((m, n)) < density
    R[np.arange(m), rng.integers(0, n, m)] = True     # every user rated one
    R[rng.integers(0, m, n), np.arange(n)] = True     # every item was rated
    users = sp.csr_matrix(R.astype(float))
    items = sp.csr_matrix(users.T)
    A = rng.standard_normal((w, w))
    P = A @ A.T / w + 0.7 * np.eye(w)                 # full, not diagonal
    Pm = P @ rng.standard_normal(w)
    B = rng.standard_normal((k, k))
    Pz = B @ B.T / k + 0.5 * np.eye(k)
    Pzm = Pz @ rng.standard_normal(k)
    Z = rng.standard_normal((n, k))
    p = rng.standard_normal((m, w))
    return dict(users=users, items=items, P=P, Pm=Pm, Pz=Pz, Pzm=Pzm, Z=Z, p=p,
                k=k, scale=1 / np.sqrt(np.asarray(R.sum(1), float)))


def _h(pr, Z):
    """``h_u = s_u sum_{j rated by u} z_j`` by a dense product (tiny problems only)."""
    return pr["scale"][:, None] * (pr["users"].toarray() @ Z)


def _x(pr, Z):
    """The user rows ``[x_u, b_u] = p_u - [h_u, 0]`` under ``Z``."""
    X = pr["p"].copy()
    X[:, :pr["k"]] -= _h(pr, Z)
    return X


def _naive_conditional(pr, Z, j):
    """Mean and covariance of ``z_j`` given ``p``, the other rows of ``Z``
    and the priors, from the joint density written out: the users'
    ``[x_u, b_u] = p_u - [h_u(Z), 0] ~ N(m0, P^-1)`` with ``x_u`` linear
    in ``z_j`` (``x_u = a_u - B_u z_j``), and ``z_j ~ N(Pz^-1 Pzm, Pz^-1)``."""
    k, P = pr["k"], pr["P"]
    m0 = np.linalg.solve(P, pr["Pm"])
    Z0 = Z.copy()
    Z0[j] = 0
    a = _x(pr, Z0)                                  # x_u with z_j = 0
    rated = pr["users"].toarray()[:, j] > 0
    prec = pr["Pz"].copy()
    lin = pr["Pzm"].copy()
    for u in np.flatnonzero(rated):
        Bu = np.zeros((k + 1, k))
        Bu[:k] = pr["scale"][u] * np.eye(k)
        prec += Bu.T @ P @ Bu
        lin += Bu.T @ P @ (a[u] - m0)
    C = np.linalg.inv(prec)
    return C @ lin, C


def _run(pr, Z, key, noise=1.0, dtype=np.float64):
    """One pass of the kernel from ``Z`` (not modified); returns the new ``Z``."""
    items = pr["items"]
    Znew = Z.astype(dtype)
    X = _x(pr, Z).astype(dtype)
    m, n, k = X.shape[0], Z.shape[0], pr["k"]
    Zp = np.full((n, gibbs.LANES), 7, dtype)   # columns past k are left alone
    status = gi.sample_implicit(
        items.indptr.astype(np.int64), items.indices.astype(np.int32), pr["scale"],
        X, pr["P"], pr["Pm"], pr["Pz"], pr["Pzm"], np.uint64(key), Znew, Zp,
        np.empty((n, k)), np.empty((m, gibbs.LANES), dtype), float(noise))
    assert status == 0 and np.array_equal(Zp[:, :k], Znew) and np.all(Zp[:, k:] == 7)
    return Znew


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_conditional_means_match_the_naive_reference_item_by_item(dtype):
    """With the noise off, the pass sets each ``z_j`` in turn to its
    conditional mean given the rows already updated (float32: the
    item-user sums in float32, 1e-5)."""
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-5)
    for seed in range(3):
        pr = _problem(seed)
        out = _run(pr, pr["Z"], 1, noise=0.0, dtype=dtype)
        Z = pr["Z"].copy()
        for j in range(Z.shape[0]):
            Z[j] = _naive_conditional(pr, Z, j)[0]
        assert np.allclose(out, Z, **tol), (seed, out, Z)


def _draws_of_first_item(pr, R, noise):
    return np.array([_run(pr, pr["Z"], key, noise)[0] for key in range(R)])


def _gaussian_ok(S, mean, C):
    R = S.shape[0]
    se = np.sqrt(np.diag(C) / R)
    emp = np.cov(S, rowvar=False)
    d = np.sqrt(np.diag(C))
    se_c = np.sqrt((np.outer(d, d) ** 2 + C ** 2) / R)
    return bool(np.all(np.abs(S.mean(0) - mean) <= Z_SE * se)
                and np.all(np.abs(emp - C) <= Z_SE * se_c))


def test_draws_match_the_exact_conditional_gaussian_and_fail_without_noise():
    """The first item's draw (given the initial state) over many streams
    against its exact conditional; the same check rejects the draws when
    the noise is removed or scaled by 0.8 or 1.2."""
    pr = _problem(5, m=9, n=3, k=3)
    mean, C = _naive_conditional(pr, pr["Z"], 0)
    R = 6000
    assert _gaussian_ok(_draws_of_first_item(pr, R, 1.0), mean, C)
    for noise in (0.0, 0.8, 1.2):
        assert not _gaussian_ok(_draws_of_first_item(pr, R, noise), mean, C), noise


def test_passes_leave_the_exact_joint_posterior_invariant():
    """Independent chains of passes (each pass a Gibbs sweep over the
    rows of ``Z`` given ``p``) end up distributed as the exact joint
    Gaussian posterior of ``Z`` given ``p``, assembled in numpy."""
    pr = _problem(2, m=6, n=3, k=2)
    n, k = 3, 2
    # joint: vec(Z) row-major; x_u = p_u - [s_u sum_j R_uj z_j, 0]
    P, Rm = pr["P"], pr["users"].toarray()
    m0 = np.linalg.solve(P, pr["Pm"])
    prec = np.kron(np.eye(n), pr["Pz"])
    lin = np.tile(pr["Pzm"], n)
    for u in range(Rm.shape[0]):
        Bu = np.zeros((k + 1, n * k))
        for j in range(n):
            Bu[:k, j * k:(j + 1) * k] = pr["scale"][u] * Rm[u, j] * np.eye(k)
        prec += Bu.T @ P @ Bu
        lin += Bu.T @ P @ (pr["p"][u] - m0)
    C = np.linalg.inv(prec)
    mean = C @ lin
    chains, steps = 2000, 12
    rng = np.random.default_rng(0)
    S = np.empty((chains, n * k))
    for c in range(chains):
        Z = 3 * rng.standard_normal((n, k))
        for t in range(steps):
            Z = _run(pr, Z, 1000 * c + t)
        S[c] = Z.ravel()
    assert _gaussian_ok(S, mean, C)


@pytest.mark.parametrize("wp", [8, 16, 24])
def test_sums_and_effective_rows_match_numpy(wp):
    """``implicit_sums`` (one, two and three blocks of eight columns) and
    ``add_implicit`` against numpy."""
    rng = np.random.default_rng(1)
    m, n, k = 30, 20, wp - 3
    R = sp.random(m, n, density=0.3, random_state=2, format="csr")
    R.data[:] = rng.integers(1, 6, R.nnz)
    indptr, indices = R.indptr.astype(np.int64), R.indices.astype(np.int32)
    scale = gi.user_scales(indptr)
    cnt = np.diff(indptr)
    assert np.allclose(scale[cnt > 0], 1 / np.sqrt(cnt[cnt > 0])) and np.all(scale[cnt == 0] == 0)
    Z = rng.standard_normal((n, k))
    Zp = np.zeros((n, wp))
    Zp[:, :k] = Z
    H = np.full((m, wp), np.nan)
    gi.implicit_sums(indptr, indices, scale, Zp, H)
    assert np.allclose(H[:, :k], scale[:, None] * ((R > 0).astype(float) @ Z), atol=1e-12)
    assert np.all(H[:, k:] == 0)
    X = rng.standard_normal((m, k + 1))
    Ep = np.empty_like(X)
    gi.add_implicit(X, H, 1.0, Ep)
    assert np.allclose(Ep[:, :k], X[:, :k] + H[:, :k]) and np.all(Ep[:, k] == X[:, k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_draws_with_shifted_targets_match_numpy(dtype):
    """The users' draw with ``H`` sees the targets ``r_ui - d_i . H[u]``
    (folded into the row systems): its conditional means equal numpy's
    solution of the shifted systems (float64: 1e-10; float32 sums: 1e-4),
    and the draws equal those of the same kernel given the shifted
    targets up to the rounding of the sums."""
    from test_bayes import _exact, _padded, _toy_side
    rng = np.random.default_rng(5)
    w, k = 4, 3
    indptr, indices, target, offset, D, _ = _toy_side(rng, 3, w, patterns=5,
                                                      n_cols=9, dtype=dtype)
    m = indptr.size - 1
    Dk = _padded(D)
    H = np.zeros((m, Dk.shape[1]), dtype)
    H[:, :k] = rng.standard_normal((m, k))
    rows = np.repeat(np.arange(m), np.diff(indptr))
    shifted = (target - np.einsum("ef,ef->e", D[indices].astype(np.float64),
                                  H[rows, :w].astype(np.float64))).astype(dtype)
    M = rng.standard_normal((w, w))
    P = M @ M.T / w + 0.5 * np.eye(w)
    Pm = P @ rng.standard_normal(w)
    bounds = np.array([0, 8, m], np.int64)
    key = np.uint64(9)
    out = {}
    for name, (t, h) in {"H": (target, H),
                         "shifted": (shifted, np.zeros((0, Dk.shape[1]), dtype))}.items():
        X, means = np.empty((m, w), dtype), np.empty((m, w), dtype)
        assert gibbs.sample_rows(indptr, indices, t, offset, Dk, 1.3, P, Pm, h, key, X, means, bounds, np.empty(0, dtype), 0,
                                 False, np.empty((0, 3))) == 0
        out[name] = X, means
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)
    for u in range(m):
        cols = indices[indptr[u]:indptr[u + 1]]
        mean, _ = _exact((cols, shifted[indptr[u]:indptr[u + 1]].astype(np.float64)),
                         D.astype(np.float64), offset.astype(np.float64), 1.3, P, Pm)
        assert np.allclose(out["H"][1][u], mean, **tol), u
    assert np.allclose(out["H"][0], out["shifted"][0], **tol)


def test_item_streams_are_standard_normal_and_match_the_kernel():
    z = np.concatenate([gi.item_normals(7, j, 6) for j in range(4000)])
    assert abs(z.mean()) < 5 / np.sqrt(z.size) and abs(z.var() - 1) < 5 * np.sqrt(2 / z.size)
    assert not np.array_equal(gi.item_normals(7, 0, 6), gi.item_normals(7, 1, 6))
    # a pass depends on its key only
    pr = _problem(3)
    a, b = _run(pr, pr["Z"], 11), _run(pr, pr["Z"], 11)
    assert np.array_equal(a, b) and not np.array_equal(a, _run(pr, pr["Z"], 12))


def _low_rank(seed=0, m=80, n=50, k=3, density=0.3):
    rng = np.random.default_rng(seed)
    X, Y = rng.standard_normal((m, k)), rng.standard_normal((n, k))
    mask = rng.random((m, n)) < density
    u, i = np.nonzero(mask)
    r = 3 + (X[u] * Y[i]).sum(1) + 0.3 * rng.standard_normal(u.size)
    return u, i, r


def test_implicit_fit_is_deterministic_across_threads_and_differs_from_plain():
    u, i, r = _low_rank(1)
    kw = dict(factors=4, iterations=10, burn_in=3, random_state=5)
    fits = [BayesianALS(num_threads=t, **kw).fit((u, i, r)) for t in (1, 2, 1)]
    for other in fits[1:]:
        for key in ("user_factors", "item_factors", "user_factor_samples",
                    "user_bias_samples", "item_bias_samples", "noise_precision_samples"):
            assert np.array_equal(getattr(fits[0], key), getattr(other, key)), key
    plain = BayesianALS(implicit_feedback=False, **kw).fit((u, i, r))
    assert not np.array_equal(plain.user_factors, fits[0].user_factors)
    # the item side is the same kind of sample, the user side the effective rows
    assert plain.user_factors.shape == fits[0].user_factors.shape


def test_implicit_flag_is_saved_and_validated(tmp_path):
    u, i, r = _low_rank(2, m=20, n=12)
    for flag in (True, False):
        model = BayesianALS(factors=2, iterations=5, burn_in=1, random_state=1,
                            implicit_feedback=flag).fit((u, i, r))
        model.save(tmp_path / "m.npz")
        back = load_model(tmp_path / "m.npz")
        assert back.implicit_feedback is flag
        assert np.array_equal(back.predict(u[:5], i[:5]), model.predict(u[:5], i[:5]))
    with pytest.raises(InputError, match="implicit_feedback"):
        BayesianALS(implicit_feedback="yes").fit((u, i, r))


def test_cli_no_implicit_feedback(tmp_path):
    from click.testing import CliRunner

    from fastals.cli import main

    for flag, want in (("--no-implicit-feedback", False), ("--implicit-feedback", True)):
        out = tmp_path / f"{want}.npz"
        res = CliRunner().invoke(main, ["train", "--model", "bayes", "--iterations", "2",
                                        "--burn-in", "1", flag, "-q", "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert load_model(out).implicit_feedback is want
