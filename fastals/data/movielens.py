"""The named MovieLens data sets: lookup, download, checksum, cache."""

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..exceptions import FastALSError, InputError

__all__ = ["DATASETS", "DownloadError", "fetch_movielens"]


class DownloadError(FastALSError, OSError):
    """A named data set is not on disk and cannot be downloaded or verified."""


DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"

#: name -> (zip file, folder inside the zip, ratings file, MD5 of the zip).
#: The MD5 sums are the ones GroupLens publishes beside each zip
#: (``<zip>.md5``); ml-latest-small is rebuilt from time to time, so it has
#: no pinned sum.
DATASETS = {
    "ml-100k": ("ml-100k.zip", "ml-100k", "u.data",
                "0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": ("ml-1m.zip", "ml-1m", "ratings.dat",
              "c4d9eecfca2ab87c1945afe126590906"),
    "ml-10m": ("ml-10m.zip", "ml-10M100K", "ratings.dat",
               "ce571fd55effeba0271552578f2648bd"),
    "ml-20m": ("ml-20m.zip", "ml-20m", "ratings.csv",
               "cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": ("ml-25m.zip", "ml-25m", "ratings.csv",
               "6b51fb2759a8657d3bfcbfc42b592ada"),
    "ml-latest-small": ("ml-latest-small.zip", "ml-latest-small", "ratings.csv",
                        None),
}


def _cache_dir():
    env = os.environ.get("FASTALS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fastals"


def fetch_movielens(name, data_home=None, base_url=None, checksum=None,
                    download=True, progress=None):
    """Path of the ratings file of a MovieLens set, downloading it if needed.

    Looks in ``$FASTALS_DATA/<name>/``, then in the cache
    (``$FASTALS_CACHE``, default ``~/.cache/fastals``), and otherwise
    downloads ``<base_url><name>.zip`` into the cache, checks its checksum and
    unpacks it.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS` (``ml-100k``, ``ml-1m``, ``ml-10m``,
        ``ml-20m``, ``ml-25m``, ``ml-latest-small``).
    data_home : path, optional
        Cache folder (default ``$FASTALS_CACHE`` or ``~/.cache/fastals``).
    base_url : str, optional
        Where the zips live (default ``$FASTALS_BASE_URL`` or GroupLens).
    checksum : str, optional
        Expected ``"sha256:<hex>"`` or ``"md5:<hex>"`` of the zip, replacing
        the pinned one (for mirrors and tests).
    download : bool
        ``False``: fail instead of downloading.
    progress : bool or None
        Show a download progress bar (tqdm's if installed, else a plain
        one); None: when stderr is
        a terminal.

    Returns
    -------
    pathlib.Path
    """
    if name not in DATASETS:
        import difflib
        close = difflib.get_close_matches(str(name).lower(), list(DATASETS), n=1,
                                          cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise InputError(f"unknown data set {name!r}; {hint}known: "
                         f"{', '.join(DATASETS)}")
    zip_name, folder, ratings_file, md5 = DATASETS[name]
    candidates = []
    if os.environ.get("FASTALS_DATA"):
        root = Path(os.environ["FASTALS_DATA"])
        candidates += [root / name / ratings_file, root / folder / ratings_file]
    cache = Path(data_home) if data_home is not None else _cache_dir()
    target = cache / name
    candidates.append(target / ratings_file)
    for path in candidates:
        if path.is_file():
            return path
    base = base_url or os.environ.get("FASTALS_BASE_URL") or DEFAULT_BASE_URL
    url = base.rstrip("/") + "/" + zip_name
    if not download:
        raise DownloadError(f"{name} is not on disk (looked in {candidates[0].parent}"
                            f"); download it from {url}")
    if checksum is None:
        checksum = f"md5:{md5}" if md5 else None
    cache.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        zpath = tmpdir / zip_name
        _download(url, zpath, name, progress)
        _verify(zpath, checksum, url)
        unpacked = tmpdir / "unpacked"
        _safe_extract(zpath, unpacked, url)
        src = unpacked / folder
        if not (src / ratings_file).is_file():
            raise DownloadError(f"{url} does not hold {folder}/{ratings_file}")
        if target.exists() and not (target / ratings_file).is_file():
            shutil.rmtree(target)  # left over from an older, broken unpack
        try:
            os.replace(src, target)
        except OSError:
            if not (target / ratings_file).is_file():  # lost a race: fine
                raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return target / ratings_file


def _download(url, dest, name, progress):
    hint = (f"cannot download {name} from {url} ({{}}); check the network, or "
            f"unpack {name}.zip yourself into $FASTALS_DATA/{name}/ "
            "(or set FASTALS_BASE_URL to a mirror)")
    try:
        resp = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(hint.format(reason)) from None
    total = int(resp.headers.get("Content-Length") or 0) or None
    bar = None
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from .._progress import progress_bar
        bar = progress_bar(total, unit="B", desc=name)
    try:
        with resp, open(dest, "wb") as out:
            while True:
                chunk = resp.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                if bar is not None:
                    bar.update(len(chunk))
    except OSError as exc:
        raise DownloadError(hint.format(exc)) from None
    finally:
        if bar is not None:
            bar.close()
    if total is not None and dest.stat().st_size != total:
        raise DownloadError(hint.format(f"got {dest.stat().st_size} of {total} bytes"))


def _verify(path, checksum, url):
    if checksum is None:
        return
    algo, _, expected = checksum.partition(":")
    if algo not in ("sha256", "md5") or not expected:
        raise InputError(f"checksum must be 'sha256:<hex>' or 'md5:<hex>', got {checksum!r}")
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    if h.hexdigest() != expected.lower():
        raise DownloadError(f"{url}: {algo} checksum mismatch (got {h.hexdigest()}, "
                            f"expected {expected}); the download is corrupt or "
                            "the file changed upstream")


def _safe_extract(zpath, dest, url):
    try:
        with zipfile.ZipFile(zpath) as zf:
            for member in zf.namelist():
                p = Path(member)
                if p.is_absolute() or ".." in p.parts:
                    raise DownloadError(f"{url}: unsafe path {member!r} in the zip")
            zf.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise DownloadError(f"{url}: not a valid zip file ({exc})") from None

