"""BayesianALS: the Gibbs row sampler against exact Gaussians, the conjugate
hyperparameter draws against their closed-form posteriors, determinism, the
stacked-sample scoring, persistence and MovieLens-100k accuracy.

Tolerances: a Monte Carlo mean of ``R`` independent draws is checked within
5 standard errors (a false alarm has odds of about 1 in 1.7 million per
check), a covariance entry within 5 of its standard errors
``sqrt((C_ii C_jj + C_ij^2) / R)``.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastals import BayesianALS, FastALS, load_model
from fastals import evaluation as E
from fastals.bayes import _normal_gamma, _normal_wishart, _sample_mean_noise
from fastals.exceptions import FastALSError, InputError, ModelFileError
from fastals.kernels import gibbs

Z = 5.0  # standard errors allowed for Monte Carlo estimates
def no_stats(dtype=np.float64):
    """No residual sums: ``pred_sum`` empty, in the factors' dtype as the
    model passes it (another dtype would compile the parallel sampler once
    more, about 20 s of a cold test run)."""
    return np.empty(0, dtype), 0, False, np.empty((0, 3))


def _toy_side(rng, n_rep, w, patterns=3, n_cols=7, dtype=np.float64):
    """CSR side of ``patterns * n_rep`` rows: ``patterns`` distinct rating
    rows, each repeated ``n_rep`` times (so one kernel call gives ``n_rep``
    independent draws of each row's conditional)."""
    D = rng.standard_normal((n_cols, w)).astype(dtype)
    offset = rng.standard_normal(n_cols).astype(dtype)
    rows = []
    for p in range(patterns):
        cols = np.sort(rng.choice(n_cols, size=2 + p, replace=False))
        rows.append((cols, rng.integers(1, 6, cols.size).astype(dtype)))
    indptr = [0]
    indices, target = [], []
    for p in range(patterns):
        for _ in range(n_rep):
            indices.append(rows[p][0])
            target.append(rows[p][1])
            indptr.append(indptr[-1] + rows[p][0].size)
    return (np.array(indptr, np.int64), np.concatenate(indices).astype(np.int32),
            np.concatenate(target), offset, D, rows)


def _exact(rows_p, D, offset, alpha, P, Pm):
    """Mean and covariance of one row's conditional posterior, by numpy."""
    cols, t = rows_p
    Dr = D[cols].astype(np.float64)
    A = alpha * Dr.T @ Dr + P
    b = alpha * Dr.T @ (t - offset[cols]) + Pm
    C = np.linalg.inv(A)
    return C @ b, C


def _padded(D):
    """``D`` with zero columns up to a multiple of ``LANES`` (what the
    kernels read: whole vectors)."""
    wp = -(-D.shape[1] // gibbs.LANES) * gibbs.LANES
    return np.hstack([D, np.zeros((D.shape[0], wp - D.shape[1]), D.dtype)])


def _no_shift(D):
    """The empty per-row target shifts (targets as they are)."""
    return np.zeros((0, D.shape[1]), D.dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_sampler_matches_exact_conditional_gaussian(dtype):
    rng = np.random.default_rng(0)
    w, R = 4, 20000
    indptr, indices, target, offset, D, rows = _toy_side(rng, R, w, dtype=dtype)
    Dk = _padded(D)
    alpha = 1.7
    M = rng.standard_normal((w, w))
    P = M @ M.T / w + 0.5 * np.eye(w)   # a full (not diagonal) prior precision
    Pm = P @ rng.standard_normal(w)
    X = np.empty((indptr.size - 1, w), dtype)
    means = np.empty_like(X)
    bounds = np.linspace(0, X.shape[0], 9).astype(np.int64)
    key = np.uint64(gibbs.stream_key(3, 1, 0))
    assert gibbs.sample_rows(indptr, indices, target, offset, Dk,
                             alpha, P, Pm, _no_shift(Dk),
                             key, X, means,
                             bounds, *no_stats(dtype)) == 0
    tol_scale = 1e-3 if dtype == np.float32 else 0.0
    for p, row in enumerate(rows):
        mean, C = _exact(row, D, offset, alpha, P, Pm)
        # the conditional means the kernel reports are exact
        exact = dtype == np.float64
        assert np.allclose(means[p * R], mean, rtol=1e-10 if exact else 1e-4,
                           atol=1e-12 if exact else 1e-5)
        S = X[p * R:(p + 1) * R].astype(np.float64)
        se = np.sqrt(np.diag(C) / R)
        assert np.all(np.abs(S.mean(0) - mean) <= Z * se + tol_scale), (p, S.mean(0), mean)
        emp = np.cov(S, rowvar=False)
        d = np.sqrt(np.diag(C))
        se_c = np.sqrt((np.outer(d, d) ** 2 + C ** 2) / R)
        assert np.all(np.abs(emp - C) <= Z * se_c), (p, emp, C)


def test_fused_residual_sums_match_the_separate_pass_and_numpy():
    rng = np.random.default_rng(4)
    indptr, indices, target, offset, D, _ = _toy_side(rng, 50, 3, n_cols=9)
    n_rows = indptr.size - 1
    X = np.empty((n_rows, 3))
    stats = np.empty((n_rows, 3))
    pred = np.full(indices.size, 7.0)  # as if one earlier sample predicted 7
    Dk = _padded(D)
    gibbs.sample_rows(indptr, indices, target, offset, Dk, 1.0,
                      np.eye(3), np.zeros(3), _no_shift(Dk), np.uint64(1), X,
                      np.empty((0, 3)),
                      np.array([0, 64, n_rows], np.int64), pred, 2, True, stats)
    again = np.empty_like(stats)
    pred2 = np.full(indices.size, 7.0)
    gibbs.residual_pass(indptr, indices, target, offset, X, Dk, pred2, 2, True, again)
    assert np.allclose(stats, again, rtol=1e-12) and np.allclose(pred, pred2)
    rows = np.repeat(np.arange(n_rows), np.diff(indptr))
    p = offset[indices] + np.einsum("ej,ej->e", X[rows], D[indices])
    r = target - p
    assert np.allclose(stats[:, 0], np.bincount(rows, r))
    assert np.allclose(stats[:, 1], np.bincount(rows, r * r))
    assert np.allclose(pred2, 7.0 + p)
    assert np.allclose(stats[:, 2], np.bincount(rows, (target - (7.0 + p) / 2) ** 2))


def test_row_sampler_empty_row_draws_from_the_prior():
    w, R = 3, 20000
    indptr = np.zeros(R + 1, np.int64)
    D = np.ones((2, w))
    P = np.diag([1.0, 4.0, 0.25])
    m0 = np.array([1.0, -2.0, 0.5])
    X = np.empty((R, w))
    D = _padded(D)
    gibbs.sample_rows(indptr, np.zeros(0, np.int32), np.zeros(0), np.zeros(2), D,
                      1.0, P, P @ m0, _no_shift(D), np.uint64(7), X,
                      np.empty((0, w)), np.array([0, R // 2, R], np.int64), *no_stats())
    sd = 1 / np.sqrt(np.diag(P))
    assert np.all(np.abs(X.mean(0) - m0) <= Z * sd / np.sqrt(R))
    assert np.allclose(X.std(0), sd, rtol=Z * np.sqrt(0.5 / R))


def test_streams_are_standard_normal_and_independent_of_order():
    key = np.uint64(gibbs.stream_key(0, 0, 0))
    z = np.stack([gibbs.row_normals(key, u, 8) for u in range(5000)])
    n = z.size
    assert abs(z.mean()) <= Z / np.sqrt(n)
    assert abs(z.var() - 1) <= Z * np.sqrt(2 / n)
    assert abs(np.mean(z ** 4) - 3) <= Z * np.sqrt(96 / n)
    # neighbouring rows and coordinates are uncorrelated
    c = np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]
    assert abs(c) <= Z / np.sqrt(n)
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) <= Z / np.sqrt(z.shape[0])
    # a row's stream depends on (key, row) only
    assert np.array_equal(gibbs.row_normals(key, 123, 8), z[123])
    other = np.uint64(gibbs.stream_key(0, 0, 1))
    assert not np.array_equal(gibbs.row_normals(other, 123, 8), z[123])


# ------------------------------------------------------------------ conjugate
def test_normal_gamma_draws_match_the_conjugate_posterior():
    rng = np.random.default_rng(1)
    F = rng.normal([0.5, -1.0], [0.3, 2.0], size=(50, 2))
    draws = 8000
    lam = np.empty((draws, 2))
    m = np.empty((draws, 2))
    for t in range(draws):
        P, Pm = _normal_gamma(F, rng)
        lam[t] = np.diag(P)
        m[t] = Pm / lam[t]
    # Normal-Gamma(mu0=0, beta0=1, a=1, b=1) posterior, written out
    N = F.shape[0]
    xbar = F.mean(0)
    a = 1 + N / 2
    b = 1 + 0.5 * ((F - xbar) ** 2).sum(0) + 0.5 * N * xbar ** 2 / (1 + N)
    e_lam, sd_lam = a / b, np.sqrt(a) / b
    assert np.all(np.abs(lam.mean(0) - e_lam) <= Z * sd_lam / np.sqrt(draws))
    e_m = N * xbar / (1 + N)
    sd_m = np.sqrt(b / ((a - 1) * (1 + N)))  # Student-t marginal of m
    assert np.all(np.abs(m.mean(0) - e_m) <= Z * sd_m / np.sqrt(draws))


def test_normal_wishart_draws_match_the_conjugate_posterior():
    rng = np.random.default_rng(2)
    F = rng.multivariate_normal([1.0, 0.0, -0.5], [[1, .3, 0], [.3, .5, .1], [0, .1, .2]],
                                size=40)
    N, w = F.shape
    draws = 4000
    Ls = np.empty((draws, w, w))
    ms = np.empty((draws, w))
    for t in range(draws):
        Lam, Lm = _normal_wishart(F, rng)
        Ls[t] = Lam
        ms[t] = np.linalg.solve(Lam, Lm)
    xbar = F.mean(0)
    C = (F - xbar).T @ (F - xbar)
    WN = np.linalg.inv(np.eye(w) + C + 2 * N / (2 + N) * np.outer(xbar, xbar))
    nu = w + N
    e_L = nu * WN
    sd_L = np.sqrt(nu * (WN ** 2 + np.outer(np.diag(WN), np.diag(WN))))
    assert np.all(np.abs(Ls.mean(0) - e_L) <= Z * sd_L / np.sqrt(draws))
    e_m = N * xbar / (2 + N)
    cov_m = np.linalg.inv(WN) / ((2 + N) * (nu - w - 1))  # Student-t marginal
    assert np.all(np.abs(ms.mean(0) - e_m) <= Z * np.sqrt(np.diag(cov_m) / draws))


def test_global_mean_and_noise_draws_match_the_conjugate_posterior():
    rng = np.random.default_rng(3)
    r = rng.normal(3.0, 0.8, size=400)    # residuals under mu = 0
    stats = np.array([[r.sum(), (r ** 2).sum(), 0.0]])
    N, alpha = r.size, 2.0
    draws = 20000
    mus = np.empty(draws)
    for t in range(draws):
        mus[t], _ = _sample_mean_noise(stats, N, 0.0, alpha, rng)
    prec = alpha * N + 1e-2
    assert abs(mus.mean() - alpha * r.sum() / prec) <= Z / np.sqrt(prec * draws)
    assert abs(mus.var() * prec - 1) <= Z * np.sqrt(2 / draws)
    # with the mean fixed at the residuals' own mean, alpha ~ Gamma
    st2 = np.array([[0.0, ((r - r.mean()) ** 2).sum(), 0.0]])
    al = np.array([_sample_mean_noise(st2, N, 0.0, 1e12, rng)[1] for _ in range(draws)])
    a, b = 1 + N / 2, 1 + 0.5 * ((r - r.mean()) ** 2).sum()
    assert abs(al.mean() - a / b) <= Z * np.sqrt(a) / b / np.sqrt(draws)


# ------------------------------------------------------------------ estimator
def _low_rank(seed=0, m=120, n=80, k=3, density=0.4, noise=0.3):
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((m, k))
    V = rng.standard_normal((n, k))
    mask = rng.random((m, n)) < density
    u, i = np.nonzero(mask)
    r = 3 + 0.5 * rng.standard_normal(m)[u] + (U[u] * V[i]).sum(1) \
        + noise * rng.standard_normal(u.size)
    return u, i, r


def test_fit_recovers_noise_and_beats_the_mean():
    u, i, r = _low_rank()
    cut = np.random.default_rng(0).random(u.size) < 0.8
    model = BayesianALS(factors=5, iterations=60, burn_in=20, random_state=0,
                        dtype=np.float64)
    model.fit((u[cut], i[cut], r[cut]))
    noise = np.mean(model.noise_history[20:])
    assert 0.2 < noise < 0.45
    pred = model.predict(u[~cut], i[~cut])
    rmse = np.sqrt(np.mean((pred - r[~cut]) ** 2))
    assert rmse < 0.6 * np.std(r[~cut])
    assert model.loss_history[-1] < 0.5
    assert model.user_factors.shape == (120, 5 * 40) and model.n_kept == 40


def test_deterministic_across_runs_and_thread_counts():
    u, i, r = _low_rank(1)
    fits = [BayesianALS(factors=4, iterations=12, burn_in=3, random_state=5,
                        num_threads=t).fit((u, i, r)) for t in (1, 2, 1)]
    for other in fits[1:]:
        for key in ("user_factors", "item_factors", "user_bias_samples",
                    "item_bias_samples", "global_mean_samples",
                    "noise_precision_samples"):
            assert np.array_equal(getattr(fits[0], key), getattr(other, key)), key
        assert fits[0].loss_history == other.loss_history
    diff = BayesianALS(factors=4, iterations=12, burn_in=3, random_state=6).fit((u, i, r))
    assert not np.array_equal(diff.user_factors, fits[0].user_factors)


def test_stacked_samples_give_the_average_and_recommend_uses_it():
    u, i, r = _low_rank(2, m=30, n=20)
    model = BayesianALS(factors=3, iterations=10, burn_in=4, random_state=0,
                        dtype=np.float64).fit((u, i, r))
    S, k = model.n_kept, 3
    Xs = model.user_factors.reshape(30, S, k) * S       # conditional means
    Xd = model.user_factor_samples.reshape(30, S, k)    # draws
    Ys = model.item_factors.reshape(20, S, k)
    rest = model.item_bias_samples[None, :, :] + model.global_mean_samples[None, None, :]
    avg = np.einsum("usk,isk->ui", Xs, Ys) / S + model.user_biases[:, None] \
        + rest.mean(2)
    per = np.einsum("usk,isk->uis", Xd, Ys) + model.user_bias_samples[:, None, :] + rest
    # the draws scatter around the conditional means (6 samples: loosely)
    assert np.corrcoef(per.mean(2).ravel(), avg.ravel())[0, 1] > 0.8
    pred, std = model.predict(np.repeat(np.arange(30), 20), np.tile(np.arange(20), 30),
                              return_std=True)
    lo, hi = r.min(), r.max()
    assert np.allclose(pred, np.clip(avg, lo, hi).ravel(), atol=1e-9)
    noise = np.mean(1 / model.noise_precision_samples)
    assert np.allclose(std, np.sqrt(per.var(2) + noise).ravel(), atol=1e-9)
    ids, scores = model.recommend(7, n=5, filter_already_liked_items=False)
    assert np.array_equal(ids, np.argsort(-avg[7], kind="stable")[:5])
    assert np.allclose(scores, avg[7, ids], atol=1e-9)
    sim, _ = model.similar_items(3, n=4)
    assert sim[0] == 3
    s, sd = model.predict(0, 0, return_std=True)
    assert isinstance(s, float) and isinstance(sd, float) and sd > np.sqrt(noise) - 1e-12
    # unknown pairs fall back to the known parts
    p, q = model.predict([0, 999], [999, 0], unknown="default", return_std=True)
    assert np.all(np.isfinite(p)) and np.all(q > 0)
    with pytest.raises(FastALSError, match="fold in"):
        model.recalculate_user(sp.csr_matrix(np.ones((1, 20))))


def test_save_load_round_trip(tmp_path):
    u, i, r = _low_rank(3, m=25, n=15)
    ids = np.array([f"u{x}" for x in u])
    model = BayesianALS(factors=2, iterations=6, burn_in=2, random_state=1).fit((ids, i, r))
    path = tmp_path / "b.npz"
    model.save(path)
    back = load_model(path)
    assert isinstance(back, BayesianALS) and back.n_kept == 4
    q = (ids[:10], i[:10])
    for a, b in zip(model.predict(*q, return_std=True), back.predict(*q, return_std=True)):
        assert np.array_equal(a, b)
    assert np.array_equal(model.recommend("u1")[0], back.recommend("u1")[0])
    assert isinstance(BayesianALS.load(path), BayesianALS)
    # FastALS files still load as FastALS
    FastALS(factors=2, iterations=1).fit((u, i, r)).save(tmp_path / "f.npz")
    assert type(load_model(tmp_path / "f.npz")) is FastALS
    with pytest.raises(InputError, match="FastALS, not a BayesianALS"):
        BayesianALS.load(tmp_path / "f.npz")
    # a sample array of the wrong shape is a damaged file
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["global_mean_samples"] = arrays["global_mean_samples"][:3]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match="columns"):
        load_model(tmp_path / "bad.npz")


@pytest.mark.parametrize("params, msg", [
    (dict(burn_in=10, iterations=10), "burn_in"),
    (dict(prior="flat"), "prior"),
    (dict(factors=0), "factors"),
    (dict(random_state=-1), "random_state"),
    (dict(init_std=float("nan")), "init_std"),
])
def test_bad_parameters_fail_clearly(params, msg):
    with pytest.raises(InputError, match=msg):
        BayesianALS(**params).fit((np.array([0, 1]), np.array([0, 1]), np.ones(2)))


def _load(path):
    d = np.loadtxt(path, dtype=np.int64)
    return d[:, 0], d[:, 1], d[:, 2].astype(np.float64)


@pytest.mark.slow
def test_ml100k_ua_rmse_with_defaults(ml100k):
    train, test = _load(ml100k / "ua.base"), _load(ml100k / "ua.test")
    model = BayesianALS(random_state=0).fit(train)
    res = E.evaluate_ratings(model, *test)
    assert res["n"] == 9430
    assert res["rmse"] <= 0.912, res       # 0.9094 measured (seed 0, 100 sweeps)
    # the implicit-feedback term's share of it (0.9139 measured without)
    plain = BayesianALS(random_state=0, implicit_feedback=False).fit(train)
    assert E.evaluate_ratings(plain, *test)["rmse"] > res["rmse"] + 0.002


def test_cli_train_model_bayes(tmp_path):
    from click.testing import CliRunner

    from fastals.cli import main

    out = tmp_path / "b.npz"
    res = CliRunner().invoke(main, ["train", "--model", "bayes", "--iterations", "3",
                                    "--burn-in", "1", "--log-every", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    sweeps = [line for line in res.output.splitlines() if line.startswith("Sweep:")]
    assert len(sweeps) == 3 and "train rmse = " in sweeps[0] and "noise sd = " in sweeps[0]
    model = load_model(out)
    assert isinstance(model, BayesianALS) and model.n_kept == 2
    bad = CliRunner().invoke(main, ["train", "--model", "bayes", "--lambda", "0.1"])
    assert bad.exit_code == 2
    assert "--regularization: not an option of --model bayes" in bad.output
