"""An edit of one kernel module recompiles the kernels that inline it.

Numba stamps a cached function with its own file only; ``dense.py``'s
sparse product inlines ``gather.py``'s row gather, so after an edit of
``gather.py`` alone Numba would load the old machine code from its cache.
:mod:`fastals.kernels._cache` stamps every kernel with every module of
the package.  Here a copy of the package runs the product, ``gather.py``
is edited (the gathered values doubled), and a second interpreter, with
the same cache, must see the edit.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import numpy as np
from fastals.kernels.dense import _sparse_times_dense

indptr = np.array([0, 2, 3], np.int64)
indices = np.array([0, 1, 1], np.int32)
data = np.array([1.0, 2.0, 3.0])
Z = np.arange(6.0).reshape(2, 3)          # k = 3: the gather's scalar loop
X = np.zeros((2, 3))
_sparse_times_dense(indptr, indices, data, Z, X, np.array([0, 2], np.int64))
hits = sum(_sparse_times_dense.stats.cache_hits.values())
print(X.sum(), hits)
"""


def _run(pkg_root, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(pkg_root))
    res = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=str(pkg_root),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    total, hits = res.stdout.split()
    return float(total), int(hits)


def test_an_edited_helper_module_recompiles_the_kernels_that_inline_it(tmp_path):
    shutil.copytree(ROOT / "fastals", tmp_path / "fastals",
                    ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"
    first, hits = _run(tmp_path, cache)
    assert (first, hits) == (63.0, 0)  # (1 Z0 + 2 Z1) + 3 Z1, summed; compiled
    assert _run(tmp_path, cache) == (63.0, 1)  # loaded from the cache
    gather = tmp_path / "fastals" / "kernels" / "gather.py"
    src = gather.read_text()
    old = "x[i] += r * z[i]"
    assert src.count(old) == 1
    gather.write_text(src.replace(old, "x[i] += 2 * r * z[i]"))
    assert _run(tmp_path, cache) == (126.0, 0)  # compiled again, with the edit


def test_a_kernel_that_cannot_be_cached_warns_instead_of_failing():
    # Numba warns, naming the function's file, where a compiled function
    # cannot be cached (it holds dynamic globals: at NUMBA_OPT=0 the dense
    # callback does); the file comes from the locator, which must answer
    # for the one it wraps
    import copy
    import warnings
    from types import SimpleNamespace

    from numba.core import caching
    from numba.core.errors import NumbaWarning

    from fastals.kernels import _cache, dense

    impl = caching.CompileResultCacheImpl(dense._gram.py_func)
    assert isinstance(impl.locator, _cache.PackageStampLocator)
    assert impl.locator._py_file == dense.__file__
    assert copy.copy(impl.locator)._inner is impl.locator._inner  # no recursion
    cres = SimpleNamespace(lifted=(), library=SimpleNamespace(has_dynamic_globals=True),
                           fndesc=SimpleNamespace(qualname="dense._gram"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert impl.check_cachable(cres) is False
    assert any(issubclass(w.category, NumbaWarning) and "Cannot cache" in str(w.message)
               for w in seen)
