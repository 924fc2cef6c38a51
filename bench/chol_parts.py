"""Where a Cholesky half-step's time goes, per side, against ``implicit``'s.

One thread, float32, CPU time of the process (``time.process_time``: less
disturbed by other jobs on a shared machine than wall time) and wall time,
each variant once per repeat, interleaved, medians and ranges printed.
Implicit's objective with ``alpha = 1`` (confidence ``c = r``, unobserved
weight 1), regularization 0.05, the k x k path for every row (the 20M set
has few short rows).

* ``implicit``: ``implicit.cpu._als.least_squares`` (BLAS at one thread);
* ``fastals``: :func:`fastals.kernels.rows._solve_cholesky` as a fit calls
  it (every row through its k x k system);
* ``init`` ... ``solve``: a serial copy of the row loop in this file that
  stops after a stage, so that differences give the stages' times:
  ``init`` fills ``A = w0 G`` and ``b = 0`` (and adds ``lam I``),
  ``gather`` also gathers the scaled item vectors and sums ``b``,
  ``syrk`` also adds them to ``A`` (``ssyrk`` per block),
  ``potrf`` also factors ``A`` (``spotrf``), ``solve`` also runs the two

    python bench/chol_parts.py --size 20M --factors 64 --repeats 3
"""

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from cg_halfsteps import load  # noqa: E402
from fastals.kernels.blas import _blas_threads_local, _potrf, _syrk  # noqa: E402
from fastals.kernels.factor import _tri_solve  # noqa: E402
from fastals.kernels.tiles import _factor_tiled, _syrk_tiled  # noqa: E402
from fastals.kernels.llvm import PREFETCH_AHEAD, _prefetch_entry  # noqa: E402

STAGES = ("init", "gather", "syrk", "potrf", "solve")


@njit(fastmath=True)
def _parts(indptr, indices, conf, Y, G, lam, w0, X, stage, cap, tiled):
    """The k x k row loop of ``_cholesky_rows`` (target 1, no offset, no
    weighted regularization, no ridge fallback), stopped after ``stage``."""
    k = Y.shape[1]
    A = np.empty((k, k), Y.dtype)
    B = np.empty((cap, k), Y.dtype)
    b = np.empty(k, Y.dtype)
    iw = np.empty(8, np.int32)
    fw = np.ones(4, Y.dtype)
    cw = np.empty(4, np.uint8)
    one = fw[3]
    prev = _blas_threads_local(1)
    for u in range(indptr.size - 1):
        for i in range(k):
            Ai = A[i]
            Gi = G[i]
            for j in range(k):
                Ai[j] = w0 * Gi[j]
            b[i] = 0
        if stage >= 1:
            p = indptr[u]
            end = indptr[u + 1]
            while p < end:
                q = min(end, p + cap)
                npos = np.int64(0)
                nneg = np.int64(0)
                for e in range(p, q):
                    _prefetch_entry(indices, e + PREFETCH_AHEAD, Y)
                    it = indices[e]
                    cf = conf[e] * one
                    cwt = cf - w0
                    yr = Y[it]
                    for j in range(k):
                        b[j] += cf * yr[j]
                    if cwt > 0:
                        s = np.sqrt(cwt)
                        row = B[npos]
                        npos += 1
                    elif cwt < 0:
                        s = np.sqrt(-cwt)
                        nneg += 1
                        row = B[cap - nneg]
                    else:
                        continue
                    for j in range(k):
                        row[j] = s * yr[j]
                if stage >= 2 and tiled:
                    if npos > 0:
                        _syrk_tiled(one, B, 0, npos, A, 0)
                    if nneg > 0:
                        _syrk_tiled(-one, B, cap - nneg, nneg, A, 0)
                elif stage >= 2:
                    if npos > 0:
                        _syrk(one, B, 0, npos, A, iw, fw, cw)
                    if nneg > 0:
                        _syrk(-one, B, cap - nneg, nneg, A, iw, fw, cw)
                p = q
        for i in range(k):
            A[i, i] += lam
        ok = True
        if stage >= 3 and tiled:
            ok = _factor_tiled(A, one)
        elif stage >= 3:
            ok = _potrf(A, iw, cw) == 0
        if stage >= 4 and ok:
            _tri_solve(A, b, k, ok, ok)
        x = X[u]
        for i in range(k):
            x[i] = b[i]
    _blas_threads_local(prev)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="20M")
    ap.add_argument("--factors", default="64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--sides", default="users,items")
    ap.add_argument("--no-implicit", action="store_true")
    ap.add_argument("--tiled", action="store_true",
                    help="also the stages from syrk on with the register-tiled "
                         "Gram update and Cholesky (fastals.kernels.tiles) "
                         "instead of ssyrk and spotrf")
    args = ap.parse_args(argv)

    import numba
    import threadpoolctl
    from fastals import kernels as K
    from fastals.kernels import rows as krows
    from fastals.model import _Side

    numba.set_num_threads(1)
    Cui = load(args.size)
    Ciu = Cui.T.tocsr()
    print(f"{args.size}: {Cui.shape[0]} x {Cui.shape[1]}, {Cui.nnz} pairs, one thread, "
          f"CPU seconds [wall], medians (ranges) over {args.repeats} repeats",
          flush=True)
    for k in [int(f) for f in args.factors.split(",")]:
        rng = np.random.default_rng(0)
        U0 = rng.random((Cui.shape[0], k), dtype=np.float32) * 0.01
        V0 = rng.random((Cui.shape[1], k), dtype=np.float32) * 0.01
        for name, M, X0, Y in (("users", Cui, U0, V0), ("items", Ciu, V0, U0)):
            if name not in args.sides.split(","):
                continue
            s = _Side(M, k, np.dtype(np.float32))
            conf = M.data.astype(np.float32)
            target = np.ones_like(conf)
            G = (Y.astype(np.float64).T @ Y).astype(np.float32)
            offset = np.zeros(Y.shape[0], np.float32)
            lam, w0 = np.float32(args.reg), np.float32(1.0)
            cap = krows._gather_cap(k)

            def fastals():
                X = X0.copy()
                krows._solve_cholesky(s.indptr, s.indices, conf, target, offset, Y,
                                      G, lam, False, w0, X, s.bounds, K.USE_BLAS, 0)

            def implicit():
                import implicit.cpu._als as _als
                X = X0.copy()
                with threadpoolctl.threadpool_limits(1, "blas"):
                    _als.least_squares(M, X, Y, args.reg, num_threads=1)

            def stage(i, tiled=False):
                def run():
                    X = X0.copy()
                    _parts(s.indptr, s.indices, conf, Y, G, lam, w0, X, i, cap, tiled)
                return run

            runs = {} if args.no_implicit else {"implicit": implicit}
            runs["fastals"] = fastals
            runs.update({n: stage(i) for i, n in enumerate(STAGES)})
            if args.tiled:
                runs.update({n + " tiled": stage(i, True)
                             for i, n in enumerate(STAGES) if i >= 2})
            for run in runs.values():
                run()  # compile / load
            t = {n: [] for n in runs}
            w = {n: [] for n in runs}
            for _ in range(args.repeats):
                for n, run in runs.items():
                    t0, w0_ = time.process_time(), time.perf_counter()
                    run()
                    t[n].append(time.process_time() - t0)
                    w[n].append(time.perf_counter() - w0_)
            med = {n: float(np.median(v)) for n, v in t.items()}
            print(f"k={k} {name} ({M.shape[0]} rows, median "
                  f"{np.median(np.diff(M.indptr)):.0f} ratings; load "
                  f"{os.getloadavg()[0]:.1f}):", flush=True)
            for n in runs:
                print(f"  {n:15s} {med[n]:.3f} ({min(t[n]):.3f}-{max(t[n]):.3f}) "
                      f"[{np.median(w[n]):.3f}]", flush=True)
            parts = [med["init"]] + [med[b] - med[a] for a, b in zip(STAGES, STAGES[1:])]

            print("  parts: " + ", ".join(f"{n} {p:.3f}" for n, p in zip(STAGES, parts))
                  + f"; fastals - solve (chunking, scheduling) "
                  f"{med['fastals'] - med['solve']:.3f}", flush=True)
            if args.tiled:
                print("  tiled: syrk " + f"{med['syrk tiled'] - med['gather']:.3f}, "
                      f"potrf {med['potrf tiled'] - med['syrk tiled']:.3f}, "
                      f"solve {med['solve tiled'] - med['potrf tiled']:.3f}", flush=True)
            if "implicit" in med:
                r = np.array(t["fastals"]) / np.array(t["implicit"])
                print(f"  fastals/implicit {r.min():.3f}-{r.max():.3f}", flush=True)


if __name__ == "__main__":
    main()
