"""Today's outputs against the ones stored before the package layout changed.

``tests/data/reference_outputs.npz`` holds factors, loss and objective
histories, biases, recommendations, similar items, fold-in factors and
ranking metrics of small synthetic fits (every objective x solver x dtype,
biases, weighted regularization, non-negative factors, the BLAS, LAPACK and
ridge-fallback paths; see ``tests/reference_outputs.py``, which wrote it).

Numba compiles for the host CPU and the kernels allow fast-math
reassociation, so the bits are only reproducible on the CPU that wrote the
file (its LLVM name and features are stored with the values):

* same CPU: every array must be bitwise equal (``np.array_equal``, NaN
  equal to NaN);
* another CPU: floats within ``rtol=2e-3`` of the stored value plus
  ``atol=2e-3`` times the array's largest magnitude (float32 fits), resp.
  ``rtol=1e-7`` / ``atol=1e-7`` (float64 fits), and at least 90 % of the
  recommended / similar ids equal (near-ties may swap).

The bits also depend on how the kernels were compiled: a process that
compiles the chunk callbacks (C callbacks, see ``fastals.kernels.llvm``)
against helpers it has just compiled itself gets results a few ulps away
from one that compiles them against helpers loaded from Numba's cache
(measured: float64 factors 4e-13 apart).  The stored values are those of a
run with a warm cache, so the outputs are recomputed in a subprocess, and
when they differ, once more: the second subprocess finds every kernel in
the cache that the first one wrote.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import reference_outputs as ref

pytestmark = pytest.mark.skipif(not os.path.exists(ref.PATH),
                                reason="tests/data/reference_outputs.npz missing")

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "reference_outputs.py")


def _load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _differences(stored, computed):
    """Lines naming every array that is not as stored (see the docstring)."""
    stored = dict(stored)
    same_cpu = str(stored.pop("__host_cpu__")) == str(computed.pop("__host_cpu__"))
    if sorted(stored) != sorted(computed):
        return [f"keys differ: {sorted(set(stored) ^ set(computed))}"]
    bad = []
    for key, want in stored.items():
        got = computed[key]
        if got.shape != want.shape or got.dtype != want.dtype:
            bad.append(f"{key}: {got.dtype}{got.shape} != {want.dtype}{want.shape}")
        elif same_cpu:
            if not np.array_equal(got, want, equal_nan=want.dtype.kind == "f"):
                bad.append(f"{key}: not bitwise equal "
                           f"(max diff {np.nanmax(np.abs(got - want))})")
        elif want.dtype.kind == "f":
            tol = 1e-7 if "float64" in key else 2e-3
            scale = np.nanmax(np.abs(want)) if want.size else 0.0
            if not np.allclose(got, want, rtol=tol, atol=tol * scale, equal_nan=True):
                bad.append(f"{key}: max diff {np.nanmax(np.abs(got - want))}")
        elif want.size and np.mean(got == want) < 0.9:
            bad.append(f"{key}: {np.mean(got != want):.0%} of the ids differ")
    return bad


def test_same_outputs_as_stored(tmp_path):
    stored = _load(ref.PATH)
    out = tmp_path / "outputs.npz"
    for attempt in range(2):
        subprocess.run([sys.executable, SCRIPT, str(out)], check=True,
                       capture_output=True)
        bad = _differences(stored, _load(out))
        if not bad:
            return
    assert not bad, "\n".join(bad)


def test_differences_are_found():
    stored = _load(ref.PATH)
    changed = dict(stored)
    key = "explicit-cholesky-float32/user_factors"
    changed[key] = np.nextafter(stored[key], np.float32(np.inf))
    assert _differences(stored, changed) == [f"{key}: not bitwise equal (max diff "
                                             f"{np.nanmax(np.abs(changed[key] - stored[key]))})"]
