"""Seconds per ALS iteration against the number of factors.

Every objective and solver, factors 2, 15, 100 (the original script's table)
and 16, 64, 128, on MovieLens-100k and on the synthetic implicit set.  The
explicit rows also report GFLOP/s per iteration (useful flops: the SYRK
Gram builds, Cholesky factorizations and triangular solves of both half
steps) next to numpy's float32 GEMM rate measured in the same run.

    python -m pytest bench/bench_als.py --benchmark-only
"""

import numpy as np
import pytest

import os

from conftest import ITERS, THREADS, gemm_rate, record
from fastals import FastALS

FACTORS = [int(k) for k in os.environ.get("FASTALS_BENCH_FACTORS", "2,15,16,64,100,128").split(",")]
CONFIGS = [("explicit", "cholesky"), ("explicit", "cg"), ("implicit", "cholesky"),
           ("implicit", "cg"), ("dense", "cholesky")]


def cholesky_flops(R, k):
    """Useful flops of one explicit Cholesky iteration (both half steps)."""
    nnz = R.nnz
    rows = R.shape[0] + R.shape[1]
    return 2 * nnz * k * (k + 1) + rows * (k ** 3 / 3.0 + 2.0 * k * k)


def time_fit(benchmark, R, iterations, **kw):
    """Benchmark one fit; returns (seconds per iteration, model).

    Seconds per iteration come from the fit's callback (training only: the
    set-up of the CSR/CSC arrays before the first epoch is excluded).
    """
    model = FastALS(random_state=0, num_threads=THREADS, calculate_training_loss=False, **kw)
    # compile (or load from the Numba cache) on a slice: kernels do not depend on k
    FastALS(**{**model.get_params(), "iterations": 1}).fit(R[:200])
    seen = []

    def fit():
        seen.clear()
        model.set_params(iterations=iterations,
                         callback=lambda epoch, loss, s: seen.append(s))
        model.fit(R)

    benchmark.pedantic(fit, rounds=1, iterations=1)
    return seen[-1] / len(seen), model


def _run(benchmark, R, data, objective, solver, k, iterations, gemm_gflops):
    # the plain model (no biases, plain penalty) the documented numbers time
    kw = dict(objective=objective, solver=solver, factors=k, regularization=0.05,
              use_bias=False, weighted_regularization=False)
    if objective == "implicit":
        kw.update(confidence="alpha_r", alpha=1.0)
    explicit = objective == "explicit" and solver == "cholesky"
    if explicit:  # GEMM rate right before and after the fit: same machine load
        before = gemm_rate(repeats=3)
    s, _ = time_fit(benchmark, R, iterations, **kw)
    gflops = sgemm = None
    if explicit:
        sgemm = 0.5 * (before + gemm_rate(repeats=3))
        gflops = cholesky_flops(R, k) / s / 1e9
        benchmark.extra_info["gflops"] = gflops
        benchmark.extra_info["sgemm_gflops"] = sgemm
    benchmark.extra_info["s_per_iter"] = s
    record(suite="als", data=data, library="fastals", objective=objective, solver=solver,
           factors=k, s_per_iter=s, gflops=gflops, sgemm_gflops=sgemm)


@pytest.mark.parametrize("k", FACTORS)
@pytest.mark.parametrize("objective,solver", CONFIGS)
def test_ml100k(benchmark, ml100k, objective, solver, k, gemm_gflops):
    benchmark.group = f"ml100k {objective} {solver}"
    _run(benchmark, ml100k, "ml100k", objective, solver, k, 5, gemm_gflops)


@pytest.mark.parametrize("k", FACTORS)
@pytest.mark.parametrize("objective,solver", CONFIGS)
def test_synthetic(benchmark, synthetic, objective, solver, k, gemm_gflops):
    benchmark.group = f"synthetic {objective} {solver}"
    data = synthetic
    if objective != "implicit":
        data = synthetic.copy()
        data.data = np.minimum(data.data, 5).astype(np.float64)  # 1-5 "stars"
    _run(benchmark, data, "synth", objective, solver, k, ITERS, gemm_gflops)
