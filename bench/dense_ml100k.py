"""Issue 2's criterion: the 100-iteration dense fit on ML-100k, compiled.

    python bench/dense_ml100k.py [REPEATS]

Prints the best and median wall time of ``FastALS(objective="dense",
factors=100, regularization=0.01, iterations=100, random_state=0).fit(R)``
after one untimed fit (compilation or cache load), with the default
thread count and, for comparison, one thread.
"""

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402
from fastals import FastALS  # noqa: E402


def main(repeats=5):
    R = _data.ml100k()
    if R is None:
        raise SystemExit(f"MovieLens-100k not found at {_data.ml100k_path()}")
    for threads in (0, 1):
        kw = dict(objective="dense", factors=100, regularization=0.01, iterations=100,
                  random_state=0, num_threads=threads)
        model = FastALS(**kw).fit(R)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model = FastALS(**kw).fit(R)
            times.append(time.perf_counter() - t)
        print(f"threads={threads or 'all'}: best {min(times):.3f} s, median "
              f"{np.median(times):.3f} s over {repeats} fits; final loss "
              f"{model.loss_history[-1]:.6f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
