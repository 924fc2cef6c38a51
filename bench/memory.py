"""Peak memory of a fit against the size of its inputs.

In a fresh interpreter: compile on a tiny set first, note the resident
memory, load the cached synthetic set (CSR), fit, and read the peak
resident memory (``resource.getrusage``).  Reported against the size of
the CSR input, its CSC transpose and the two factor matrices.

    python bench/memory.py [SIZE] [FACTORS] [OBJECTIVE] [SOLVER]   # defaults: 2M 64 implicit cholesky
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {here!r})
import numpy as np, scipy.sparse as sp
from fastals import FastALS
import _data
size, k, objective, solver = {args!r}
kw = dict(objective=objective, solver=solver, factors=k, iterations=1, random_state=0,
          use_bias=False, weighted_regularization=False,
          calculate_training_loss=False)
FastALS(**kw).fit(sp.random(50, 40, density=0.2, format="csr", random_state=0))


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


before = rss()
R = _data.synthetic(size)
loaded = rss()
FastALS(**kw).fit(R)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
csr = R.data.nbytes + R.indices.nbytes + R.indptr.nbytes
csc = R.data.nbytes + R.indices.nbytes + (R.shape[1] + 1) * R.indptr.itemsize
factors = (R.shape[0] + R.shape[1]) * k * 4
print(json.dumps(dict(size=size, k=k, objective=objective, solver=solver, nnz=int(R.nnz),
                      csr_bytes=csr, csc_bytes=csc, factor_bytes=factors,
                      rss_before_data=before, rss_after_load=loaded, peak_rss=peak,
                      fit_and_data_bytes=peak - before)))
"""


def measure(size="2M", k=64, objective="implicit", solver="cholesky"):
    code = CHILD.format(here=str(HERE), args=(size, k, objective, solver))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    inputs = r["csr_bytes"] + r["csc_bytes"] + r["factor_bytes"]
    r["inputs_bytes"] = inputs
    r["ratio"] = r["fit_and_data_bytes"] / inputs
    return r


def main(argv):
    size = argv[0] if argv else "2M"
    k = int(argv[1]) if len(argv) > 1 else 64
    objective = argv[2] if len(argv) > 2 else "implicit"
    solver = argv[3] if len(argv) > 3 else "cholesky"
    r = measure(size, k, objective, solver)
    mb = 1 / 2 ** 20
    print(f"{size} k={k} {objective}/{solver}: CSR {r['csr_bytes'] * mb:.0f} MiB + "
          f"CSC {r['csc_bytes'] * mb:.0f} MiB + factors {r['factor_bytes'] * mb:.0f} MiB = "
          f"{r['inputs_bytes'] * mb:.0f} MiB; peak of data + fit "
          f"{r['fit_and_data_bytes'] * mb:.0f} MiB = {r['ratio']:.2f}x")
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
