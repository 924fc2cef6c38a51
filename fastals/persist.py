"""The model file: write and read a fitted model's hyperparameters and
arrays (:func:`fastals.save_model` / :func:`fastals.load_model` in
:mod:`fastals.model` call these; this module knows no model class).

File format (version 1): an uncompressed ``.npz`` (zip) holding only plain
numeric or unicode arrays, so it is read with ``allow_pickle=False`` and
never executes code:

==================  =========================================================
``__meta__``        uint8 bytes of a UTF-8 JSON object: ``format``
                    (``"fastals-model"``), ``version``, ``fastals_version``,
                    ``params`` (the hyperparameters) and ``n_epochs``
``user_factors``    float32/float64 ``(n_users, factors)``
``item_factors``    same dtype, ``(n_items, factors)``
``user_biases``     same dtype, ``(n_users,)``
``item_biases``     same dtype, ``(n_items,)``
``global_mean``     float64 scalar
``loss_history``    float64 ``(n_epochs,)``
``objective_history`` float64 ``(n_epochs,)``
``user_ids``        optional: int64, uint64 or unicode ``(n_users,)`` raw ids
``item_ids``        optional: int64, uint64 or unicode ``(n_items,)`` raw ids
``train_indptr``,   optional: the training interactions as CSR arrays
``train_indices``,  (int64 ``(n_users + 1,)``, int32, float64), used by
``train_data``      ``recommend`` to filter already-liked items
``rating_range``    optional: float64 ``(2,)`` min and max training value,
                    used by ``predict`` to clip
==================  =========================================================

A model other than ``FastALS`` names its class in ``__meta__["model"]``
(``"BayesianALS"``) and may add arrays of its own, returned unchecked in
``state["extra"]`` for its class to check; its factor arrays may then have
any number of columns (``BayesianALS`` stacks its samples).

Saving is atomic: the file is written under a temporary name in the same
folder, flushed to disk and renamed over the target, so the target is
either the old file, the complete new one, or absent -- never half-written.
Loading checks the zip CRCs, every array's presence, dtype and shape, that
numbers are finite and the format version, and raises
:class:`~fastals.exceptions.ModelFileError` on any problem.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from .exceptions import ModelFileError

__all__ = ["save_arrays", "load_arrays", "FORMAT_VERSION"]

FORMAT_NAME = "fastals-model"
FORMAT_VERSION = 1
_FLOAT_ARRAYS = ("user_factors", "item_factors", "user_biases", "item_biases")
_REQUIRED = ("__meta__", "global_mean", "loss_history", "objective_history") \
    + _FLOAT_ARRAYS
_OPTIONAL = ("user_ids", "item_ids")
_NOT_SAVED = ("callback",)


def _params_json(model_params):
    params = {}
    for key, value in model_params.items():
        if key in _NOT_SAVED:
            continue
        if key == "dtype":
            value = np.dtype(value).name
        elif key == "random_state":
            value = int(value) if isinstance(value, (int, np.integer)) else None
        elif isinstance(value, np.generic):
            value = value.item()
        params[key] = value
    return params


def _id_array(ids, n, what):
    ids = np.asarray(ids)
    if ids.shape != (n,):
        raise ValueError(f"{what} has shape {ids.shape}, expected ({n},)")
    if ids.dtype.kind == "u":  # unsigned ids may not fit int64 (>= 2**63)
        return ids.astype(np.uint64)
    if ids.dtype.kind == "i":
        return ids.astype(np.int64)
    return ids.astype(str)


def save_arrays(path, params, arrays, fastals_version, model_class="FastALS"):
    """Write a model's hyperparameters and arrays to ``path`` atomically.

    Parameters
    ----------
    path : str or path
        Target file, written exactly there (no extension is added).
    params : dict
        The hyperparameters (``get_params()``); ``callback`` is dropped.
    arrays : dict of ndarray
        ``user_factors`` ... ``objective_history`` and the optional arrays of
        the table above, as described there.
    fastals_version : str
        Recorded in ``__meta__``.
    model_class : str
        Recorded in ``__meta__`` unless it is ``"FastALS"``.
    """
    meta = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "fastals_version": fastals_version,
        "params": _params_json(params),
        "n_epochs": len(arrays["loss_history"]),
    }
    if model_class != "FastALS":
        meta["model"] = model_class
    arrays = dict(arrays)
    for key, factors in (("user_ids", "user_factors"), ("item_ids", "item_factors")):
        if arrays.get(key) is not None:
            arrays[key] = _id_array(arrays[key], arrays[factors].shape[0], key)
        else:
            arrays.pop(key, None)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    _atomic_write(os.fspath(path), lambda f: np.savez(f, **arrays))


def _atomic_write(path, write):
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                               suffix=".tmp", dir=folder)
    try:
        # mkstemp creates the file 0600; give it the mode a plain open()
        # would (0666 less the umask), as users expect of a saved model.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def _fail(path, msg):
    raise ModelFileError(f"{path}: {msg}")


def load_arrays(path, known_params):
    """Read and check a model file written by :func:`save_arrays`.

    Parameters
    ----------
    path : str or path
    known_params : collection of str, or dict of them by model class name
        The hyperparameter names this fastals knows.

    Returns
    -------
    params : dict
        The saved hyperparameters (``callback`` is not saved).
    state : dict
        ``user_factors``, ``item_factors``, ``user_biases``, ``item_biases``
        (C-contiguous), ``global_mean`` (float), ``loss_history``,
        ``objective_history`` (lists of float), ``user_ids``, ``item_ids``
        (array or None), ``train`` (CSR matrix or None),
        ``rating_range`` (``(min, max)`` or None), ``model_class`` (str) and
        ``extra`` (dict of the other arrays, unchecked).

    Raises
    ------
    ModelFileError
        Missing, empty, truncated, corrupted or foreign file, or one written
        by a newer fastals.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        _fail(path, f"cannot read the model file ({exc.strerror or exc})")
    if size == 0:
        _fail(path, "empty file, not a fastals model")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()  # reads every member, checks its CRC
            if bad is not None:
                _fail(path, f"corrupted model file (CRC error in {bad})")
            with np.load(path, allow_pickle=False) as npz:
                names = set(npz.files)
                if "__meta__" not in names:
                    _fail(path, "not a fastals model file (no __meta__ record)")
                arrays = {k: npz[k] for k in names}
    except ModelFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile):
        _fail(path, "not a fastals model file, or a truncated or damaged one "
                    "(not a valid zip archive)")
    except Exception as exc:  # zlib/struct/EOF/ValueError/OSError on damage
        _fail(path, f"damaged or foreign model file ({_one_line(exc)})")
    return _checked(path, arrays, known_params)


def _one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def _checked(path, a, known_params):
    raw = a["__meta__"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        _fail(path, "not a fastals model file (bad __meta__ record)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        _fail(path, "damaged model file (unreadable __meta__ record)")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        _fail(path, "not a fastals model file")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        _fail(path, f"damaged model file (format version {version!r})")
    if version > FORMAT_VERSION:
        _fail(path, f"written by a newer fastals ({meta.get('fastals_version', '?')}"
                    f", model format {version}; this fastals reads up to format "
                    f"{FORMAT_VERSION}); upgrade fastals: pip install -U fastals")
    missing = [k for k in _REQUIRED if k not in a]
    if missing:
        _fail(path, f"damaged model file (missing {', '.join(missing)})")
    params = meta.get("params")
    if not isinstance(params, dict):
        _fail(path, "damaged model file (no hyperparameters)")
    model_class = meta.get("model", "FastALS")
    if isinstance(known_params, dict):
        if model_class not in known_params:
            _fail(path, f"unknown model class {model_class!r}: damaged, or written "
                        "by a newer fastals (upgrade fastals: pip install -U fastals)")
        known_params = known_params[model_class]
    unknown = [k for k in params if k not in known_params]
    if unknown:
        _fail(path, f"unknown hyperparameters {unknown}: damaged, or written by a "
                    "newer fastals (upgrade fastals: pip install -U fastals)")

    uf, itf = a["user_factors"], a["item_factors"]
    if uf.ndim != 2 or itf.ndim != 2 or uf.dtype not in (np.float32, np.float64) \
            or itf.dtype != uf.dtype or uf.shape[1] != itf.shape[1]:
        _fail(path, f"damaged model file (factor arrays {uf.dtype}{uf.shape} and "
                    f"{itf.dtype}{itf.shape} do not match)")
    m, k = uf.shape
    n = itf.shape[0]
    if params.get("factors") != k and model_class == "FastALS":
        _fail(path, f"damaged model file (factors={params.get('factors')!r} but "
                    f"the arrays have {k} columns)")
    expect = {"user_biases": (m,), "item_biases": (n,)}
    for key, shape in expect.items():
        if a[key].shape != shape or a[key].dtype != uf.dtype:
            _fail(path, f"damaged model file ({key} is {a[key].dtype}{a[key].shape},"
                        f" expected {uf.dtype}{shape})")
    gm = a["global_mean"]
    if gm.shape != () or gm.dtype.kind != "f":
        _fail(path, "damaged model file (global_mean is not a float scalar)")
    for key in ("loss_history", "objective_history"):
        if a[key].ndim != 1 or a[key].dtype != np.float64:
            _fail(path, f"damaged model file ({key} is {a[key].dtype}{a[key].shape})")
    for key in _FLOAT_ARRAYS + ("global_mean",):
        if not np.isfinite(a[key]).all():
            _fail(path, f"damaged model file ({key} holds NaN or inf)")
    ids = {}
    for key, size in (("user_ids", m), ("item_ids", n)):
        v = a.get(key)
        if v is not None:
            if v.shape != (size,) or v.dtype.kind not in "iuU":
                _fail(path, f"damaged model file ({key} is {v.dtype}{v.shape}, "
                            f"expected ({size},) integers or strings)")
        ids[key] = v

    train = None
    have = [k for k in ("train_indptr", "train_indices", "train_data") if k in a]
    if have:
        if len(have) != 3:
            _fail(path, "damaged model file (incomplete training interactions)")
        ip, ix, dv = a["train_indptr"], a["train_indices"], a["train_data"]
        if ip.dtype != np.int64 or ip.shape != (m + 1,) or ix.dtype != np.int32 \
                or ix.ndim != 1 or dv.dtype != np.float64 or dv.shape != ix.shape \
                or ip[0] != 0 or ip[-1] != ix.size or (np.diff(ip) < 0).any() \
                or (ix.size and (ix.min() < 0 or ix.max() >= n)) \
                or not np.isfinite(dv).all():
            _fail(path, "damaged model file (bad training interactions)")
        import scipy.sparse as sp
        train = sp.csr_matrix((dv, ix, ip), shape=(m, n))
    rng = a.get("rating_range")
    if rng is not None and (rng.shape != (2,) or rng.dtype != np.float64
                            or not np.isfinite(rng).all() or rng[0] > rng[1]):
        _fail(path, "damaged model file (bad rating_range)")

    state = {
        "user_factors": np.ascontiguousarray(uf),
        "item_factors": np.ascontiguousarray(itf),
        "user_biases": np.ascontiguousarray(a["user_biases"]),
        "item_biases": np.ascontiguousarray(a["item_biases"]),
        "global_mean": float(gm),
        "loss_history": [float(x) for x in a["loss_history"]],
        "objective_history": [float(x) for x in a["objective_history"]],
        "user_ids": ids["user_ids"],
        "item_ids": ids["item_ids"],
        "train": train,
        "rating_range": None if rng is None else (float(rng[0]), float(rng[1])),
        "model_class": model_class,
        "extra": {key: a[key] for key in a if key not in _KNOWN},
    }
    return params, state


_KNOWN = set(_REQUIRED + _OPTIONAL) | {"train_indptr", "train_indices", "train_data",
                                       "rating_range"}


def damaged(path, problem):
    """The error for a model file whose arrays its model class refuses."""
    return ModelFileError(f"{path}: damaged model file ({problem})")


def bad_params(path, exc):
    """The error for saved hyperparameters that the model refuses."""
    return ModelFileError(f"{path}: damaged model file (bad hyperparameters: "
                          f"{_one_line(exc)})")
