"""What BayesianALS's implicit-feedback term costs: fits of ``ua.base`` with
``implicit_feedback=True`` and ``False``, alternating, side by side.

Usage::

    python bench/bayes_implicit_cost.py [--data DIR] [--repeats 3] [--threads 1]

``DIR`` is the ``ml-100k`` folder (default: ``$FASTALS_DATA/ml-100k`` or
``../shared/data/ml-100k`` beside the repository).  Each repeat fits
``BayesianALS(random_state=0)`` (the defaults: 12 factors, 100 sweeps;
the figures in docs/bayesian.md were measured at 200)
with and without the term and prints wall and thread CPU time
(``time.thread_time``: with ``--threads 1`` the kernels run on the calling
thread, so it is less sensitive to other jobs than wall time) and the
ratio with / without; then the range of the ratios.  A small fit first
compiles the kernels (or loads them from the cache) outside the clock.
Nothing from the data set is written anywhere.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout
from fastals import BayesianALS  # noqa: E402

from bayes_vs_myfm import default_root, load  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not (args.data / "ua.base").is_file():
        raise SystemExit(f"MovieLens-100k not found at {args.data} (--data or "
                         "$FASTALS_DATA)")
    train = load(args.data / "ua.base")
    for flag in (False, True):
        BayesianALS(iterations=2, burn_in=1, random_state=0, implicit_feedback=flag).fit(
            tuple(a[:2000] for a in train))
    ratios = {"wall": [], "cpu": []}
    for rep in range(args.repeats):
        res = {}
        for flag in (False, True):
            w0, c0 = time.perf_counter(), time.thread_time()
            BayesianALS(random_state=0, num_threads=args.threads,
                        implicit_feedback=flag).fit(train)
            res[flag] = (time.perf_counter() - w0, time.thread_time() - c0)
        for q, name in enumerate(("wall", "cpu")):
            ratios[name].append(res[True][q] / res[False][q])
        extra = (res[True][1] - res[False][1]) / 200 * 1e3
        print(f"repeat {rep + 1}: without {res[False][0]:.2f} s wall, {res[False][1]:.2f} s "
              f"cpu; with {res[True][0]:.2f} s wall, {res[True][1]:.2f} s cpu; ratio "
              f"wall {ratios['wall'][-1]:.3f}, cpu {ratios['cpu'][-1]:.3f}; the term "
              f"{extra:.2f} ms cpu per sweep", flush=True)
    for name, r in ratios.items():
        print(f"with / without implicit_feedback, {name} time: {min(r):.3f}-{max(r):.3f} "
              f"(median {np.median(r):.3f}, {len(r)} repeats)")


if __name__ == "__main__":
    main()
