"""Nothing is dense: a 10^6 x 10^6 fit with 10^6 ratings runs in little memory.

A dense users x items array would need 4 TB; the factors at k = 8 need 64 MB.
The fit runs in a subprocess that first compiles the kernels on a tiny input,
so that the measured growth of the peak resident set is the fit's own.
"""

import json
import subprocess
import sys

import pytest

SCRIPT = r"""
import json, resource, sys
import numpy as np, scipy.sparse as sp
from fastals import FastALS

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

tiny = sp.random(50, 40, density=0.2, random_state=0, format="csr")
for obj in ("explicit", "implicit", "dense"):
    FastALS(objective=obj, factors=8, iterations=1).fit(tiny)
rng = np.random.default_rng(0)
n = 10**6
X = sp.csr_matrix((rng.integers(1, 6, n).astype(np.float32),
                   (rng.integers(0, n, n), rng.integers(0, n, n))), shape=(n, n))
before = peak_mb()
out = {}
for obj in ("explicit", "implicit", "dense"):
    m = FastALS(objective=obj, factors=8, iterations=1, random_state=0).fit(X)
    assert m.user_factors.shape == (n, 8) and np.isfinite(m.item_factors).all()
    out[obj] = peak_mb() - before
print(json.dumps(out))
"""


@pytest.mark.slow
def test_million_by_million_fit_stays_small():
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    growth = json.loads(res.stdout.strip().splitlines()[-1])
    # factors (64 MB) + CSR/CSC (24 MB) + per-step temporaries; a dense
    # array of even one of the 10^6 x 10^6 float32 rows-by-columns would be
    # 4 TB.
    for objective, mb in growth.items():
        assert mb < 350, f"{objective}: peak memory grew by {mb:.0f} MB"
