"""Set-up time of ``fit`` against one iteration, for both solvers.

    python bench/setup_time.py [--size 75M] [--factors 64] [--threads 2]
                               [--iterations 2] [--profile]

On the cached synthetic set (``bench/_data.py``; ``--size 75M`` is 480k
users x 17.7k items, generated once into ``$FASTALS_BENCH_CACHE``, e.g.
``/tmp/fastals-bench``), fits ``FastALS(objective="explicit",
solver="cholesky")`` and ``FastALS(objective="implicit", solver="cg",
confidence="alpha_r")``, float32, after compiling on a small slice.  The
set-up is everything ``fit`` does before its first iteration (checks,
canonical CSR, transpose, confidences, chunks, starting factors): the time
from the call to the first epoch's callback less that epoch's own time.
Prints set-up, seconds per iteration (the mean over ``--iterations``) and
their ratio, and the peak resident memory of the process.  ``--profile``
adds the ten most expensive calls of a set-up alone (``iterations=0``).
"""

import argparse
import cProfile
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # this checkout's fastals

import _data  # noqa: E402
from fastals import FastALS  # noqa: E402

CASES = {
    "explicit-cholesky": dict(objective="explicit", solver="cholesky"),
    "implicit-cg": dict(objective="implicit", solver="cg", confidence="alpha_r"),
}


def run(R, kw, iterations):
    marks = []
    model = FastALS(**kw, iterations=iterations,
                    callback=lambda e, loss, s: marks.append((time.perf_counter(), s)))
    t0 = time.perf_counter()
    model.fit(R)
    first_at, first_s = marks[0]
    setup = first_at - t0 - first_s
    per_iter = marks[-1][1] / len(marks)
    return setup, per_iter


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="75M", choices=sorted(_data.SIZES))
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    a = ap.parse_args()
    t = time.perf_counter()
    R = _data.synthetic(a.size)
    print(f"{a.size}: {R.shape[0]:,} x {R.shape[1]:,}, {R.nnz:,} ratings "
          f"(loaded in {time.perf_counter() - t:.1f} s)", flush=True)
    for name, case in CASES.items():
        kw = dict(case, factors=a.factors, num_threads=a.threads,
                  calculate_training_loss=False, random_state=0)
        FastALS(**kw, iterations=1).fit(R[:2000])  # compile / load the kernels
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            FastALS(**kw, iterations=0).fit(R)
            prof.disable()
            print(f"--- {name}: set-up profile")
            pstats.Stats(prof).sort_stats("tottime").print_stats(10)
        setup, per_iter = run(R, kw, a.iterations)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        print(f"{name}: set-up {setup:.2f} s, iteration {per_iter:.2f} s, "
              f"set-up / iteration {setup / per_iter:.2f} (peak RSS so far "
              f"{peak:.2f} GiB)", flush=True)


if __name__ == "__main__":
    main()
