"""Numba's on-disk cache of the kernels, made stale by an edit of any of them.

Numba keys a cached function by the modification time and size of the one
file that defines it.  The kernels here inline helpers from other modules
of this package (register tiles, gathers, factorizations), so an edit of
``tiles.py`` changes machine code cached under ``dense_fit.py`` or
``rows.py`` while their own stamps stay the same: Numba would load the old
code, silently (after a ``git pull`` into an editable install, say).  The
locator of :func:`install` answers for the functions defined in this
package and stamps each of them with every module's modification time and
size: whatever changes, every kernel compiles again once.  Where the cache
lives is unchanged (``__pycache__`` beside the sources, or
``NUMBA_CACHE_DIR``); it is that of Numba's own locator for the function.
"""

import functools
import os

from numba.core import caching

_DIR = os.path.dirname(os.path.abspath(__file__))


@functools.lru_cache(maxsize=None)
def package_stamp():
    """``(name, mtime, size)`` of every module of this package, by name."""
    out = []
    for name in sorted(os.listdir(_DIR)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(_DIR, name))
            out.append((name, st.st_mtime, st.st_size))
    return tuple(out)


class PackageStampLocator(caching._CacheLocator):
    """Numba's locator for a function of this package, with
    :func:`package_stamp` as its source stamp."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        # what Numba reads of a locator beyond its methods (``_py_file``,
        # for the warning that a function cannot be cached) is the inner's
        if name == "_inner":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self._inner, name)

    def ensure_cache_path(self):
        self._inner.ensure_cache_path()

    def get_cache_path(self):
        return self._inner.get_cache_path()

    def get_disambiguator(self):
        return self._inner.get_disambiguator()

    def get_source_stamp(self):
        return self._inner.get_source_stamp(), package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if os.path.dirname(os.path.abspath(py_file)) != _DIR:
            return None
        for other in caching.CacheImpl._locator_classes:
            if other is not cls:
                inner = other.from_function(py_func, py_file)
                if inner is not None:
                    return cls(inner)
        return None


def install():
    """Put :class:`PackageStampLocator` first in Numba's locators (once);
    before the kernels are decorated, which is when Numba picks one."""
    classes = caching.CacheImpl._locator_classes
    if PackageStampLocator not in classes:
        classes.insert(0, PackageStampLocator)
