"""Fixtures and the end-of-run report for the benchmark suites.

Run with ``python -m pytest bench/ --benchmark-only`` (``bench/`` is not in
the default test run).  Knobs (environment):

* ``FASTALS_BENCH_SIZE``: synthetic set, one of ``bench/_data.py:SIZES``
  (default ``20M``: about 20M interactions, 140k users x 27k items).
* ``FASTALS_BENCH_ITERS``: ALS iterations timed per configuration on the
  synthetic set (default 1; ML-100k uses 5).
* ``FASTALS_BENCH_THREADS``: threads for fastals and implicit (default 2).
* ``FASTALS_BENCH_FACTORS``: comma-separated factors of ``bench_als.py``
  (default ``2,15,16,64,100,128``).
* ``FASTALS_BENCH_OUT``: where the JSON of all results is written
  (default ``<cache>/results-<size>.json``, see ``bench/_data.py``).

Besides pytest-benchmark's own table (whole fits), a summary of seconds per
iteration, GFLOP/s and the ratios against ``implicit`` is printed at the end
and written to the JSON file.
"""

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402

SIZE = os.environ.get("FASTALS_BENCH_SIZE", "20M")
ITERS = int(os.environ.get("FASTALS_BENCH_ITERS", "1"))
THREADS = int(os.environ.get("FASTALS_BENCH_THREADS", "2"))

RESULTS = {"meta": {}, "rows": []}


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` too (pytest's default pattern is ``test_*.py``)."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)


def record(**row):
    RESULTS["rows"].append(row)


@pytest.fixture(scope="session")
def ml100k():
    R = _data.ml100k()
    if R is None:
        pytest.skip(f"MovieLens-100k not found at {_data.ml100k_path()}")
    return R


@pytest.fixture(scope="session")
def synthetic():
    t = time.perf_counter()
    R = _data.synthetic(SIZE)
    RESULTS["meta"]["synthetic"] = {"size": SIZE, "shape": list(R.shape),
                                    "nnz": int(R.nnz),
                                    "load_or_generate_s": time.perf_counter() - t}
    return R


def gemm_rate(n=2000, repeats=5):
    """numpy float32 GEMM GFLOP/s (best of ``repeats``) with THREADS BLAS threads."""
    from threadpoolctl import threadpool_limits
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    with threadpool_limits(THREADS, "blas"):
        a @ b
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2.0 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


@pytest.fixture(scope="session")
def gemm_gflops():
    rate = gemm_rate()
    RESULTS["meta"]["numpy_sgemm_gflops"] = rate
    return rate


def pytest_terminal_summary(terminalreporter):
    if not RESULTS["rows"]:
        return
    import platform
    meta = RESULTS["meta"]
    meta.update(threads=THREADS, iterations=ITERS, python=platform.python_version(),
                numpy=np.__version__, cpu=_cpu_model(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    try:
        import numba
        meta["numba"] = numba.__version__
    except ImportError:
        pass
    out = os.environ.get("FASTALS_BENCH_OUT") or str(_data.cache_dir() / f"results-{SIZE}.json")
    Path(out).write_text(json.dumps(RESULTS, indent=1))
    tr = terminalreporter
    tr.write_sep("=", "fastals benchmark summary (seconds per ALS iteration)")
    for key in ("numpy_sgemm_gflops", "synthetic", "cpu"):
        if key in meta:
            tr.write_line(f"{key}: {meta[key]}")
    for r in RESULTS["rows"]:
        extra = ""
        if r.get("gflops"):
            extra = f"  {r['gflops']:.1f} GFLOP/s"
            ref = r.get("sgemm_gflops") or meta.get("numpy_sgemm_gflops")
            if ref:
                extra += f" ({100 * r['gflops'] / ref:.0f}% of numpy sgemm {ref:.0f})"
        if r.get("ratio") is not None:
            extra += f"  fastals/implicit = {r['ratio']:.2f}"
        tr.write_line(f"{r['suite']:9s} {r['data']:8s} {r['library']:8s} {r['objective']:8s} "
                      f"{r['solver']:8s} k={r['factors']:<4d} {r['s_per_iter']:.4f} s/iter{extra}")
    tr.write_line(f"results written to {out}")


def _cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    import platform
    return platform.processor()
