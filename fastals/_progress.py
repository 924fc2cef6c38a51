"""Progress bars with no extra install: tqdm's when available, else a plain one."""

import sys
import time


class _PlainBar:
    """A one-line text bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total, unit, desc, file):
        self.total, self.unit, self.desc, self.file = total, unit, desc, file
        self.n = 0
        self.postfix = ""
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._draw(force=True)

    def update(self, k=1):
        self.n += k
        self._draw()

    def set_postfix(self, **kw):
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())
        self._draw()

    def _draw(self, force=False):
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and self.n != self.total:
            return
        self._last = now
        width = 30
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
            count = f"{self.n}/{self.total} {self.unit}"
            head = f"{100 * frac:3.0f}%|{bar}| {count}"
        else:
            head = _size(self.n) if self.unit == "B" else f"{self.n} {self.unit}"
        line = (f"{self.desc}: " if self.desc else "") + head + \
            f" [{now - self.t0:.1f}s]" + (f" {self.postfix}" if self.postfix else "")
        self.file.write("\r" + line)
        self.file.flush()

    def close(self):
        self._draw(force=True)
        self.file.write("\n")
        self.file.flush()


def _size(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1000


def progress_bar(total, unit="it", desc=None, file=None):
    """A bar with ``update(n)``, ``set_postfix(**kw)`` and ``close()``.

    tqdm's when tqdm is installed, otherwise a plain text bar on stderr.
    """
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _PlainBar(total, unit, desc, file or sys.stderr)
    return tqdm(total=total, unit=unit, desc=desc, file=file,
                unit_scale=unit == "B")
