"""CG half-steps side by side: fastals' ``solve_cg`` against ``implicit``'s
``least_squares_cg`` on the same factors and data.

One "iteration" is both half-steps (users, then items), each library with
its own Gram matrix computed inside (implicit computes ``Y^T Y`` in its
solver; fastals' time includes :func:`fastals.kernels.gram`).  Implicit's
objective with ``alpha = 1``: confidence ``c = r``, preference 1,
unobserved weight 1, 3 CG steps each, float32, the same number of threads,
implicit's BLAS limited to one thread as it recommends.  The two libraries
alternate per repeat, so that both see the same load; the ratio of each
repeat and their range are printed.  Faster to run than
``bench_vs_implicit.py`` (no fit set-up, no compilation on a slice), and
it times only the solver (no loss, no checks).  ``fastals`` runs the
half-steps as the fit does (:func:`fastals.kernels.solve_cg_split`: the
rows of more than ``LONG_GATHER_VALUES // k`` entries in the push form);
``--gather`` adds ``gather``, every row in the gather form
(:func:`fastals.kernels.solve_cg`), timed in the same repeats.

    python bench/cg_halfsteps.py --size 20M --factors 64,128 --repeats 3
    python bench/cg_halfsteps.py --size short3M --factors 64,128 --repeats 3
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _data  # noqa: E402

#: The short-row set of issue 14, for checkouts whose ``_data`` lacks it.
SHORT = ("short3M", (150_000, 30_000, 2_700_000), (0.6, 0.9))


def load(size):
    if size in _data.SIZES:
        return _data.synthetic(size).astype(np.float32)
    if size != SHORT[0]:
        raise SystemExit(f"unknown size {size!r}")
    path = _data.cache_dir() / f"implicit-{size}-seed0-make_ratings-v1.npz"
    if not path.is_file():
        from fastals.data.synthetic import make_ratings
        m, n, nnz = SHORT[1]
        r = make_ratings(n_users=m, n_items=n, n_ratings=nnz, implicit=True, seed=0,
                         user_exponent=SHORT[2][0], item_exponent=SHORT[2][1])
        R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)), shape=(m, n))
        R.sort_indices()
        tmp = path.with_suffix(".tmp.npz")
        sp.save_npz(tmp, R, compressed=False)
        os.replace(tmp, path)
    return sp.load_npz(path).tocsr().astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="20M")
    ap.add_argument("--factors", default="64,128")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--gather", action="store_true",
                    help="also time the gather form for every row")
    args = ap.parse_args(argv)

    import numba
    import threadpoolctl
    import implicit.cpu._als as _als
    from fastals import kernels as K
    from fastals.model import _Side

    numba.set_num_threads(args.threads)
    Cui = load(args.size)
    Ciu = Cui.T.tocsr()
    print(f"{args.size}: {Cui.shape[0]} x {Cui.shape[1]}, {Cui.nnz} pairs, "
          f"{args.threads} threads, load average {os.getloadavg()[0]:.1f}", flush=True)
    for k in [int(f) for f in args.factors.split(",")]:
        sides = []
        for M in (Cui, Ciu):
            s = _Side(M, k, np.dtype(np.float32))
            n_other = M.shape[1]
            s.solve_conf = conf = M.data.astype(np.float32)
            s.target = np.ones_like(conf)
            sides.append((s, conf, s.target, s.cg_push(K.push_above(k, 4, n_other))))
        rng = np.random.default_rng(0)
        U0 = (rng.random((Cui.shape[0], k), dtype=np.float32) * 0.01)
        V0 = (rng.random((Cui.shape[1], k), dtype=np.float32) * 0.01)
        lam, w0 = np.float32(args.reg), np.float32(1.0)

        def fastals_iter(U, V, split=True):
            for (s, conf, target, push), X, Y in ((sides[0], U, V), (sides[1], V, U)):
                G = K.gram(Y, np.linspace(0, Y.shape[0], 17).astype(np.int64))
                K.solve_cg_split(s.indptr, s.indices, conf, target,
                                 np.zeros(Y.shape[0], np.float32), Y,
                                 G.astype(np.float32), lam, False, w0, X, s.bounds,
                                 3, push if split else None)

        def gather_iter(U, V):
            fastals_iter(U, V, False)

        pushed = [0 if p is None else p[0].sel.size for *_, p in sides]
        print(f"k={k}: rows pushed: users {pushed[0]}, items {pushed[1]}", flush=True)

        def implicit_iter(U, V):
            with threadpoolctl.threadpool_limits(1, "blas"):
                _als.least_squares_cg(Cui, U, V, args.reg, num_threads=args.threads,
                                      cg_steps=3)
                _als.least_squares_cg(Ciu, V, U, args.reg, num_threads=args.threads,
                                      cg_steps=3)

        variants = [("implicit", implicit_iter), ("fastals", fastals_iter)]
        if args.gather:
            variants.append(("gather", gather_iter))
        fastals_iter(U0.copy(), V0.copy())  # compile / load
        gather_iter(U0.copy(), V0.copy())
        ratios = []
        gathers = []
        for rep in range(args.repeats):
            t = {}
            for name, fn in variants:
                U, V = U0.copy(), V0.copy()
                t0 = time.perf_counter()
                fn(U, V)
                t[name] = time.perf_counter() - t0
            ratios.append(t["fastals"] / t["implicit"])
            extra = ""
            if args.gather:
                gathers.append(t["gather"] / t["implicit"])
                extra = (f", gather {t['gather']:.3f} s, gather/implicit "
                         f"{gathers[-1]:.3f}")
            print(f"k={k} repeat {rep}: implicit {t['implicit']:.3f} s, fastals "
                  f"{t['fastals']:.3f} s, fastals/implicit {ratios[-1]:.3f}{extra} "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"k={k}: fastals CG / implicit CG = {np.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}, {args.repeats} repeats)"
              + (f"; gather form {np.median(gathers):.3f} ({min(gathers):.3f}-"
                 f"{max(gathers):.3f})" if args.gather else ""), flush=True)


if __name__ == "__main__":
    main()
