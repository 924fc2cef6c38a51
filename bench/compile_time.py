"""Cold and warm start of a first fit (Numba compilation vs on-disk cache).

Runs two fresh interpreters with the same new, empty ``NUMBA_CACHE_DIR``:
the first compiles every kernel a fit needs (cold), the second loads them
from the cache (warm).  Each reports the import time and the time of its
first fit on a small synthetic set, for each objective.

    python bench/compile_time.py
"""

import json
import subprocess
import sys
import tempfile

CHILD = r"""
import json, time
t0 = time.perf_counter()
from fastals import FastALS, make_ratings
import scipy.sparse as sp
t_import = time.perf_counter() - t0
r = make_ratings(n_users=300, n_items=200, n_ratings=5000, seed=0)
R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)))
out = {"import_s": t_import}
for name, kw in [("explicit", {}), ("implicit", {"objective": "implicit"}),
                 ("implicit_cg", {"objective": "implicit", "solver": "cg"}),
                 ("dense", {"objective": "dense"})]:
    t = time.perf_counter()
    FastALS(factors=32, iterations=1, random_state=0, **kw).fit(R)
    out[name + "_first_fit_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def run(cache):
    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": cache}
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    with tempfile.TemporaryDirectory() as cache:
        cold = run(cache)
        warm = run(cache)
    for label, r in (("cold", cold), ("warm", warm)):
        total = sum(r.values())
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in r.items())
        print(f"{label}: total {total:.2f} s ({parts})")
    return cold, warm


if __name__ == "__main__":
    main()
