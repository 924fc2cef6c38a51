"""Per-part thread CPU time of one BayesianALS sweep on MovieLens-100k
``ua.base`` (12 factors unless ``--factors``, one Numba thread): the
budget of a fit.

Usage::

    python bench/bayes_parts.py [--data DIR] [--reps 30] [--factors 12]

Each part is timed alone with ``time.thread_time`` (minimum over
``--reps`` calls) on the arrays a fit uses: the rows' moments, each side's
row draws (the items' with and without the fused residual sums), the eight-lane
factorizations, solves and normals alone (the same draws over empty rows),
the separate residual pass, the implicit-feedback term's parts (the sums
``h_u``, the users' draw with the targets shifted by ``y_i . h_u``, the
effective rows, the draw of ``Z``), the per-sweep random numbers of the
hyperparameters, one Normal-Wishart draw, the storing of one kept sample,
the per-fit data preparation and prediction of ``ua.test``, and the fixed
cost of a sweep (a default fit of 300 ratings, per sweep: kernel launches,
small dense algebra, Python); then whole fits (fit and predict, thread
time).  Nothing from the data set is written anywhere.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's fastals

from bayes_vs_myfm import default_root, load  # noqa: E402
from fastals import BayesianALS  # noqa: E402
from fastals._input import to_csr, transpose_csr  # noqa: E402
from fastals._bayes_implicit import ImplicitTerm  # noqa: E402
from fastals.bayes import _Side  # noqa: E402
from fastals.kernels import gibbs, gibbs_implicit  # noqa: E402
from fastals.kernels.chunks import threads  # noqa: E402


def best_ms(f, reps):
    best = np.inf
    for _ in range(reps):
        t = time.thread_time()
        f()
        best = min(best, time.thread_time() - t)
    return 1e3 * best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--factors", type=int, default=12)
    args = ap.parse_args()
    if not (args.data / "ua.base").is_file():
        raise SystemExit(f"MovieLens-100k not found at {args.data} (--data or "
                         "$FASTALS_DATA)")
    train, test = load(args.data / "ua.base"), load(args.data / "ua.test")
    csr, _, _ = to_csr(train, "sum")
    k, dt = args.factors, np.float32
    w = k + 1
    wp = -(-w // gibbs.LANES) * gibbs.LANES
    users, items = _Side(csr, w, dt), _Side(transpose_csr(csr), w, dt)
    m, n = users.n_rows, items.n_rows
    rng = np.random.default_rng(0)
    U, V = np.zeros((m, w), dt), np.zeros((n, w), dt)
    U[:, :k] = 0.3 * rng.standard_normal((m, k))
    V[:, :k] = 0.3 * rng.standard_normal((n, k))
    Du, ou, Dv, ov = np.zeros((m, wp), dt), np.empty(m, dt), np.zeros((n, wp), dt), np.empty(n, dt)
    gibbs.design(U, 3.5, Du, ou)
    gibbs.design(V, 3.5, Dv, ov)
    P, Pm, key = 2.0 * np.eye(w), np.zeros(w), np.uint64(5)
    pred, stats = np.zeros(csr.nnz, dt), np.empty((n, 3))
    M, none = np.empty((m, w), dt), np.empty((0, w), dt)
    off = (np.empty(0), 0, False, np.empty((0, 3)))
    zu, zi = np.zeros_like(users.indptr), np.zeros_like(items.indptr)
    s, G = np.empty(w), np.empty((w, w))
    Us, Ur = np.zeros((m, k * 195), dt), np.zeros((m, k * 195), dt)
    Vs, ub, ib = np.zeros((n, k * 195), dt), np.zeros((m, 195), dt), np.zeros((n, 195), dt)
    ub_mean = np.zeros(m)
    r = args.reps
    imp = ImplicitTerm(users, items, k, wp, dt)
    imp.Z[:] = 0.1 * rng.standard_normal(imp.Z.shape)
    imp.Zp[:, :k] = imp.Z
    E = np.empty_like(U)
    Pz, Pzm = 2.0 * np.eye(k), np.zeros(k)
    hr = np.random.default_rng(1)
    ru = np.empty(w + w * (w - 1) // 2 + w)

    no_shift = np.zeros((0, wp), dt)
    P2, Pm2 = np.empty((w, w)), np.empty(w)
    sV, GV = np.empty(w), np.empty((w, w))
    gibbs.row_moments(V, sV, GV)
    zs = rng.standard_normal(w + w * (w - 1) // 2)
    model0 = BayesianALS(factors=k, iterations=3, burn_in=1, random_state=0,
                         num_threads=1).fit(train)

    def prepare():
        c, _, _ = to_csr(train, "sum")
        a, b = _Side(c, w, dt), _Side(transpose_csr(c), w, dt)
        ImplicitTerm(a, b, k, wp, dt)

    def draw(side, indptr, o, D, X, means, res=off, H=no_shift):
        return lambda: gibbs.sample_rows(indptr, side.indices, side.target, o, D, 1.0,
                                         P, Pm, H, key, X, means, side.bounds, *res)

    parts = [
        ("moments of the item rows", lambda: gibbs.row_moments(V, s, G)),
        ("users' draw",
         draw(users, users.indptr, ov, Dv, U, M)),
        ("  of which eight-lane factor, solves, normals",
         draw(users, zu, ov, Dv, U, M)),
        ("items' draw, no residual sums", draw(items, items.indptr, ou, Du, V, none)),
        ("  of which eight-lane factor, solves, normals",
         draw(items, zi, ou, Du, V, none)),
        ("items' draw with the fused residual sums",
         draw(items, items.indptr, ou, Du, V, none, (pred, 3, True, stats))),
        ("separate residual pass", lambda: gibbs.residual_pass(
            items.indptr, items.indices, items.target, ou, V, Du, pred, 3, True, stats)),
        ("implicit: h_u sums (implicit_sums)", lambda: gibbs_implicit.implicit_sums(
            users.indptr, users.indices, imp.scale, imp.Zp, imp.H)),
        ("implicit: users' draw with the targets shifted by y_i . h_u",
         draw(users, users.indptr, ov, Dv, U, M, H=imp.H)),
        ("implicit: effective rows (add_implicit x2)", lambda: (
            gibbs_implicit.add_implicit(U, imp.H, 1.0, E),
            gibbs_implicit.add_implicit(M, imp.H, 1.0, M))),
        ("implicit: Z draw (sample_implicit)", lambda: gibbs_implicit.sample_implicit(
            items.indptr, items.indices, imp.scale, U, P, Pm, Pz, Pzm, key, imp.Z,
            imp.Zp, imp.zeta, imp.r, 0.0)),
        ("python: hyperparameter random numbers", lambda: (
            np.random.default_rng([0, 5]).standard_normal(),
            hr.chisquare(np.arange(w, 0, -1) + m), hr.standard_normal(out=ru[w:]))),
        ("keep_sample (one kept sample)", lambda: gibbs.keep_sample(
            3, M, U, Dv, ov, 3.5, Us, Ur, Vs, ub, ub_mean, ib)),
        ("hyperparameters: Normal-Wishart draw (x3 per sweep)", lambda: gibbs.normal_wishart(
            float(n), sV, GV, 2.0, 1.0, np.full(w, float(n)), zs[w:], zs[:w], P2, Pm2)),
        ("per fit: data preparation (to_csr, transpose, _Side x2, ImplicitTerm)",
         prepare),
        ("per fit: predict on ua.test (9,430 pairs)", lambda: model0.predict(
            test[0], test[1], unknown="default")),
    ]
    with threads(1):
        for _, f in parts:
            f()  # compile or load from the cache
        print(f"per part, thread CPU ms, minimum of {r}:")
        for name, f in parts:
            print(f"  {name:<50s} {best_ms(f, r):7.3f}")
        BayesianALS(iterations=2, burn_in=1, random_state=0).fit(
            tuple(a[:2000] for a in train))
        # what a sweep costs beyond its work: a default fit of 300 ratings
        # (kernel launches, the hyperparameters' small dense algebra and
        # random numbers, Python)
        tiny = (rng.integers(0, 30, 300), rng.integers(0, 40, 300),
                rng.integers(1, 6, 300).astype(float))
        over = []
        for _ in range(5):
            t = time.thread_time()
            BayesianALS(factors=k, random_state=0, num_threads=1).fit(tiny)
            over.append(time.thread_time() - t)
        print(f"  {'per sweep: fixed costs (a 100-sweep fit of 300 ratings / 100)':<50s} "
              f"{10 * min(over):7.3f}")
        fits = []
        for _ in range(3):
            t = time.thread_time()
            model = BayesianALS(factors=k, random_state=0, num_threads=1).fit(train)
            model.predict(test[0], test[1], unknown="default")
            fits.append(time.thread_time() - t)
    print(f"whole default fit + predict, thread CPU: {min(fits):.3f}-{max(fits):.3f} s "
          f"(3 fits; {1e3 * min(fits) / model.iterations:.2f} ms per sweep at best)")


if __name__ == "__main__":
    main()
