"""Where a CG half-step's time goes, per side, against ``implicit``'s.

One thread, float32, CPU time of the process (``time.process_time``: less
disturbed by other jobs on a shared machine than wall time), each variant
once per repeat, interleaved:

* ``implicit``: ``implicit.cpu._als.least_squares_cg`` (3 steps, BLAS at
  one thread);
* ``cg``: fastals' ``solve_cg`` (3 steps);
* ``no G``: the same without the shared part (``w0 = 0``: no eigenbasis,
  nothing rotated), i.e. the gathers, the passes over the rating data and
  the per-row vector work;
* ``residual``: pass 0 only (gather, one pass over the data; with ``G``
  the eigenbasis and the rotations too).

``cg - no G`` is the time of the shared part: ``G``'s eigendecomposition,
the rotations ``Y Q``, ``X Q`` and ``X Q^T`` (GEMMs) and the diagonal;
``no G - (residual without G)`` that of three CG steps over the data.

``--push`` adds ``push`` (and ``push no G``): the half-step as the fit
runs it (:func:`fastals.kernels.solve_cg_split`), the rows of more than
``--above`` entries (default: the fit's, ``LONG_GATHER_VALUES // k``;
0: every row; -1: none; the fit pushes none where ``k`` times the item
size is under 512 bytes or the other side's factors under 32 MiB) in the push form (in lockstep, their entries in the other
side's row order, ``--blocks`` blocks), the others gathered.

    python bench/cg_parts.py --size short3M --factors 64,128 --push --repeats 3

    python bench/cg_parts.py --size short3M --factors 128 --repeats 3
    python bench/cg_parts.py --size 20M --factors 64,128 --repeats 2
"""

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from cg_halfsteps import load  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="short3M")
    ap.add_argument("--factors", default="128")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--push", action="store_true",
                    help="also time the push form (kernels.cg_push)")
    ap.add_argument("--sides", default="users,items")
    ap.add_argument("--blocks", type=int, default=None,
                    help="blocks of the push form (default: the fit's)")
    ap.add_argument("--above", type=int, default=None,
                    help="rows of more entries are pushed (default: the fit's)")
    args = ap.parse_args(argv)

    import numba
    import threadpoolctl
    import implicit.cpu._als as _als
    from fastals import kernels as K
    from fastals.kernels import cg_push as P
    from fastals.model import _Side

    numba.set_num_threads(1)
    Cui = load(args.size)
    Ciu = Cui.T.tocsr()
    print(f"{args.size}: {Cui.shape[0]} x {Cui.shape[1]}, {Cui.nnz} pairs, one thread, "
          f"CPU seconds", flush=True)
    for k in [int(f) for f in args.factors.split(",")]:
        rng = np.random.default_rng(0)
        U0 = rng.random((Cui.shape[0], k), dtype=np.float32) * 0.01
        V0 = rng.random((Cui.shape[1], k), dtype=np.float32) * 0.01
        for name, M, X0, Y in (("users", Cui, U0, V0), ("items", Ciu, V0, U0)):
            if name not in args.sides.split(","):
                continue
            s = _Side(M, k, np.dtype(np.float32))
            above = P.push_above(k, 4, Y.shape[0]) if args.above is None else args.above
            sel = np.flatnonzero(s.counts > above) if above >= 0 else \
                np.zeros(0, np.int64)
            layout = P.PushLayout(s.indptr, s.indices, sel,
                                  args.blocks or P.PUSH_BLOCKS)
            conf = M.data.astype(np.float32)
            target = np.ones_like(conf)
            G = K.gram(Y, np.linspace(0, Y.shape[0], 17).astype(np.int64))
            G = G.astype(np.float32)
            offset = np.zeros(Y.shape[0], np.float32)

            def fastals(w0, steps):
                def run():
                    X = X0.copy()
                    K.solve_cg(s.indptr, s.indices, conf, target, offset, Y, G,
                               np.float32(args.reg), False, np.float32(w0), X,
                               s.bounds, steps)
                return run

            pconf = layout.take(conf)

            def push(w0, steps):
                def run():
                    X = X0.copy()
                    P.solve_cg_split(s.indptr, s.indices, conf, target, offset, Y,
                                     G, np.float32(args.reg), False, np.float32(w0),
                                     X, s.bounds, steps,
                                     (layout, pconf, np.ones_like(pconf))
                                     if sel.size else None)
                return run

            def implicit():
                X = X0.copy()
                with threadpoolctl.threadpool_limits(1, "blas"):
                    _als.least_squares_cg(M, X, Y, args.reg, num_threads=1, cg_steps=3)

            runs = {"implicit": implicit, "cg": fastals(1, 3), "no G": fastals(0, 3),
                    "residual": fastals(1, 0), "residual no G": fastals(0, 0)}
            if args.push:
                runs.update({"push": push(1, 3), "push no G": push(0, 3)})
            for run in runs.values():
                run()  # compile / load
            t = {n: [] for n in runs}
            for _ in range(args.repeats):
                for n, run in runs.items():
                    t0 = time.process_time()
                    run()
                    t[n].append(time.process_time() - t0)
            med = {n: float(np.median(v)) for n, v in t.items()}
            cg = np.array(t["cg"]) / np.array(t["implicit"])
            if args.push:
                pu = np.array(t["push"]) / np.array(t["implicit"])
                pc = np.array(t["push"]) / np.array(t["cg"])
            print(f"k={k} {name}: {sel.size} rows of more than {above} entries "
                  f"({layout.indices.size} entries) pushed" if args.push else "",
                  end=" | " if args.push else "")
            print(f"k={k} {name}: " + ", ".join(f"{n} {v:.3f}" for n, v in med.items())
                  + f" | shared part {med['cg'] - med['no G']:.3f}, 3 steps "
                  f"{med['no G'] - med['residual no G']:.3f} | cg/implicit "
                  f"{cg.min():.3f}-{cg.max():.3f}" + (
                      f", push/implicit {pu.min():.3f}-{pu.max():.3f}, push/cg "
                      f"{pc.min():.3f}-{pc.max():.3f}" if args.push else "")
                  + f" (load {os.getloadavg()[0]:.1f})",
                  flush=True)


if __name__ == "__main__":
    main()
