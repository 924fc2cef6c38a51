"""Cross-row prefetch in a model of CG's gather form, on the short-row set's
access pattern (issue 14, round 6).

A Numba model of the gather form's row loop, one thread: per row, its
entries' vectors are copied from a random ``n_other x k`` float32 matrix
into a block (prefetched ``PREFETCH_AHEAD`` entries ahead, as
``kernels.cg._cg_gather`` does), then ``--passes`` passes over the block
(a dot product and an update of ``k`` per entry, as a CG step).  Variants,
timed in interleaved rounds (CPU time, ns per entry, ratio to ``base`` in
the same round):

* ``base``: as the package does (the gather's prefetches only);
* ``burst N``: also the vectors of the next ``N - 8`` entries past the
  row's end prefetched, a third at the start of each of three passes;
* ``spread N``: the same, half a vector per entry inside the passes;
* ``nomiss``: every entry of a row copies the row's first vector (the
  floor: no cache misses in the gather; a wrong result).

The rows are those the gather form gathers (at most ``2^20 / k`` entries),
in CSR order; the item ids are the set's, the vectors random.

    python bench/cg_prefetch.py --side users --repeats 5
    python bench/cg_prefetch.py --side items --repeats 5
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

import numba  # noqa: E402
from numba import njit  # noqa: E402

from cg_halfsteps import load  # noqa: E402
from fastals.kernels.llvm import PREFETCH_AHEAD, _prefetch_entry  # noqa: E402


@njit(fastmath=True, cache=False)
def _rows(Y, indptr, idx, S, cross, spread, nomiss, passes):
    k = Y.shape[1]
    acc = np.zeros(k, np.float32)
    for u in range(indptr.size - 1):
        p = indptr[u]
        n = indptr[u + 1] - p
        for e in range(n):
            _prefetch_entry(idx, p + e + PREFETCH_AHEAD, Y)
            yr = Y[idx[p if nomiss else p + e]]
            row = S[e]
            for j in range(k):
                row[j] = yr[j]
        pf0 = p + n + PREFETCH_AHEAD
        m = max(cross - PREFETCH_AHEAD, 0)
        share = (m + passes - 1) // passes
        for it in range(passes):
            a0 = min(pf0 + it * share, pf0 + m)
            a1 = min(a0 + share, pf0 + m)
            if not spread:
                for e in range(a0, a1):
                    _prefetch_entry(idx, e, Y)
            c = a0
            for e in range(n):
                if spread and c < a1 and e % 2 == 0:
                    _prefetch_entry(idx, c, Y)
                    c += 1
                s = S[e]
                d = np.float32(0)
                for j in range(k):
                    d += s[j] * acc[j]
                d *= np.float32(1e-9)
                for j in range(k):
                    acc[j] += d * s[j]
    return acc[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", choices=("users", "items"), default="users")
    ap.add_argument("--size", default="short3M")
    ap.add_argument("--factors", type=int, default=128)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--cross", default="24,40,64")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args(argv)
    numba.set_num_threads(1)
    k = a.factors
    C = load(a.size)
    C = (C.T if a.side == "items" else C).tocsr()
    C.sort_indices()
    lens = np.diff(C.indptr)
    rows = np.flatnonzero(lens <= (1 << 20) // k)
    indptr = np.concatenate([[0], np.cumsum(lens[rows])]).astype(np.int64)
    idx = np.concatenate([C.indices[C.indptr[r]:C.indptr[r + 1]]
                          for r in rows]).astype(np.int32)
    Y = np.random.default_rng(0).random((C.shape[1], k), dtype=np.float32)
    S = np.zeros((max(lens[rows].max(), 1), k), np.float32)
    variants = {"base": (0, False, False)}
    for c in map(int, a.cross.split(",")):
        variants[f"burst {c}"] = (c, False, False)
        variants[f"spread {c}"] = (c, True, False)
    variants["nomiss"] = (0, False, True)
    for v in variants.values():
        _rows(Y, indptr[:3], idx, S, *v, a.passes)
    t = {name: [] for name in variants}
    for _ in range(a.repeats):
        for name, v in variants.items():
            t0 = time.process_time()
            _rows(Y, indptr, idx, S, *v, a.passes)
            t[name].append((time.process_time() - t0) / idx.size * 1e9)
    print(f"{a.size} {a.side}, k={k}, {rows.size} rows, {idx.size} entries, "
          f"{a.passes} passes, one thread, CPU ns per entry, {a.repeats} rounds "
          f"(load {os.getloadavg()[0]:.1f})")
    base = np.array(t["base"])
    for name, v in t.items():
        r = np.array(v) / base
        print(f"  {name:10s} {min(v):6.1f}-{max(v):6.1f}  x{r.min():.3f}-{r.max():.3f} "
              f"(median {np.median(r):.3f})")


if __name__ == "__main__":
    main()
