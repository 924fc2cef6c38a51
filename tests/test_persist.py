"""Tests of fastals.persist: exact round trips, atomic saves, damaged files."""

import io
import json
import os
import zipfile

import numpy as np
import pytest

from fastals import FastALS
from fastals.exceptions import ModelFileError, NotFittedError
from fastals import load_model, save_model
from fastals.persist import FORMAT_VERSION
from fastals.data.synthetic import make_ratings

ARRAYS = ("user_factors", "item_factors", "user_biases", "item_biases")


@pytest.fixture(scope="module")
def data():
    return make_ratings(60, 40, 600, seed=2)


def fitted(data, ids="int", **params):
    u, i, v, _ = data
    if ids == "str":
        u = np.array([f"user-{x}" for x in u])
        i = np.array([f"é-{x}" for x in i])  # non-ASCII survives
    X = (u, i, v)
    if ids == "none":
        import scipy.sparse as sp
        X = sp.csr_matrix((v, (u, i)))
    params = {"factors": 4, "iterations": 3, "random_state": 0, **params}
    return FastALS(**params).fit(X)


def assert_same(a, b):
    for key in ARRAYS:
        x, y = getattr(a, key), getattr(b, key)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert a.global_mean == b.global_mean
    assert a.loss_history == b.loss_history
    assert a.objective_history == b.objective_history
    for key in ("user_ids", "item_ids"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None)
        if x is not None:
            assert x.tolist() == y.tolist()
    # a model file holds the values in force (objective defaults resolved)
    pa, pb = a.resolved_params(), b.resolved_params()
    pa.pop("callback"), pb.pop("callback")
    assert np.dtype(pa.pop("dtype")) == np.dtype(pb.pop("dtype"))
    assert pa == pb


@pytest.mark.parametrize("ids,params", [
    ("int", {}),
    ("str", {"dtype": np.float64}),
    ("none", {"use_bias": True, "regularization": 0.1}),
    ("int", {"objective": "implicit", "alpha": 2.0, "confidence": "log"}),
    ("int", {"objective": "dense"}),
])
def test_round_trip_is_exact(tmp_path, data, ids, params):
    model = fitted(data, ids, **params)
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = FastALS.load(path)
    assert_same(model, loaded)
    assert os.listdir(tmp_path) == ["m.npz"]
    users = model.user_ids[:5] if model.user_ids is not None else np.arange(5)
    items = model.item_ids[:5] if model.item_ids is not None else np.arange(5)
    np.testing.assert_array_equal(model.predict(users, items),
                                  loaded.predict(users, items))
    for u in users[:3]:
        a, b = model.recommend(u, n=5), loaded.recommend(u, n=5)
        assert a[0].tolist() == b[0].tolist()  # already-liked items filtered alike
        np.testing.assert_array_equal(a[1], b[1])


def test_file_is_plain_arrays_and_loads_without_pickle(tmp_path, data):
    path = tmp_path / "m.npz"
    save_model(fitted(data), path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["__meta__"].tobytes())
        assert all(npz[k].dtype != object for k in npz.files)
    assert meta["format"] == "fastals-model" and meta["version"] == FORMAT_VERSION
    assert meta["params"]["factors"] == 4


def test_without_training_interactions(tmp_path, data):
    model = fitted(data)
    save_model(model, tmp_path / "m.npz", include_training=False)
    loaded = load_model(tmp_path / "m.npz")
    assert_same(model, loaded)
    # predictions are still clipped to the training range
    assert loaded.predict(model.user_ids[0], model.item_ids[0]) == \
        model.predict(model.user_ids[0], model.item_ids[0])
    with pytest.raises(Exception, match="no training interactions"):
        loaded.recommend(model.user_ids[0])
    assert len(loaded.recommend(model.user_ids[0], filter_already_liked_items=False)[0]) == 10


def test_unfitted_model_is_refused(tmp_path):
    with pytest.raises(NotFittedError):
        FastALS().save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_nothing_and_keeps_the_old_file(tmp_path, data, monkeypatch):
    path = tmp_path / "m.npz"
    model = fitted(data)
    model.save(path)
    before = path.read_bytes()

    def broken(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted(data, random_state=1).save(path)
    assert os.listdir(tmp_path) == ["m.npz"] and path.read_bytes() == before
    with pytest.raises(OSError):
        model.save(tmp_path / "new.npz")
    assert os.listdir(tmp_path) == ["m.npz"]


def test_interrupted_save_leaves_nothing(tmp_path, data, monkeypatch):
    def interrupted(f, **arrays):
        f.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted(data).save(tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------ damaged files
@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("good") / "m.npz"
    save_model(fitted(data, factors=2), path)
    return path.read_bytes()


def _load_bytes(tmp_path, blob, name="x.npz"):
    path = tmp_path / name
    path.write_bytes(blob)
    return load_model(path)


def test_every_truncation_is_rejected(tmp_path, good_bytes):
    sizes = sorted(set(range(0, len(good_bytes), max(1, len(good_bytes) // 300)))
                   | {1, 22, len(good_bytes) - 1, len(good_bytes) - 22})
    for size in sizes:
        with pytest.raises(ModelFileError):
            _load_bytes(tmp_path, good_bytes[:size])


def test_single_bit_flips_are_rejected_or_harmless(tmp_path, data, good_bytes):
    # Every byte of the file, one flipped bit each: the load either fails
    # with ModelFileError or (flips in unchecked zip metadata such as
    # timestamps) returns exactly the saved model.
    reference = _load_bytes(tmp_path, good_bytes, "ref.npz")
    rejected = 0
    step = max(1, len(good_bytes) // 500)
    positions = range(0, len(good_bytes), step)
    for pos in positions:
        blob = bytearray(good_bytes)
        blob[pos] ^= 1 << (pos % 8)
        try:
            model = _load_bytes(tmp_path, bytes(blob))
        except ModelFileError:
            rejected += 1
            continue
        assert_same(reference, model)
    assert rejected > 0.9 * len(positions)


@pytest.mark.parametrize("blob,message", [
    (b"", "empty file"),
    (b"hello world, not a zip", "not a valid zip"),
    (b"\x93NUMPY\x01\x00v\x00{'descr': '<f8'}", "not a valid zip"),
])
def test_foreign_bytes(tmp_path, blob, message):
    with pytest.raises(ModelFileError, match=message):
        _load_bytes(tmp_path, blob)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="cannot read the model file"):
        load_model(tmp_path / "nope.npz")


def _rewrite(good_bytes, tmp_path, change):
    with np.load(io.BytesIO(good_bytes), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    change(arrays, meta)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "changed.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change,message", [
    (lambda a, m: m.update(version=FORMAT_VERSION + 1),
     "written by a newer fastals .* upgrade fastals"),
    (lambda a, m: m.update(format="other"), "not a fastals model"),
    (lambda a, m: a.pop("item_factors"), "missing item_factors"),
    (lambda a, m: a.update(user_biases=a["user_biases"][:-1]), "user_biases"),
    (lambda a, m: a.update(item_factors=a["item_factors"].astype(np.float64)),
     "do not match"),
    (lambda a, m: a["user_factors"].__setitem__((0, 0), np.nan), "NaN or inf"),
    (lambda a, m: m["params"].update(factors=7), "factors=7"),
    (lambda a, m: m["params"].update(objective="magic"), "bad hyperparameters"),
    (lambda a, m: m["params"].update(evil=1), "unknown hyperparameters"),
    (lambda a, m: a.update(user_ids=a["user_ids"][:3]), "user_ids"),
    (lambda a, m: a.update(train_indices=a["train_indices"] + 10**6),
     "bad training interactions"),
    (lambda a, m: a.pop("train_data"), "incomplete training"),
])
def test_inconsistent_contents(tmp_path, good_bytes, change, message):
    with pytest.raises(ModelFileError, match=message):
        load_model(_rewrite(good_bytes, tmp_path, change))


def test_foreign_zip_and_npz(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.npz", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ModelFileError, match="not a fastals model"):
        load_model(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", x=np.arange(3))
    with pytest.raises(ModelFileError, match="not a fastals model"):
        load_model(tmp_path / "b.npz")


class _Boom:
    def __reduce__(self):
        return (open, (str(_Boom.marker), "w"))


def test_pickled_objects_are_never_executed(tmp_path, good_bytes):
    _Boom.marker = tmp_path / "code-ran"
    with np.load(io.BytesIO(good_bytes), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    evil = np.empty(1, dtype=object)
    evil[0] = _Boom()
    arrays["user_ids"] = evil
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays)
    assert b"code-ran" in path.read_bytes()  # the pickle is in the file
    with pytest.raises(ModelFileError):
        load_model(path)
    assert not _Boom.marker.exists()


def test_saved_file_has_the_usual_permissions(tmp_path, data):
    import os
    import stat
    old = os.umask(0o022)
    try:
        path = tmp_path / "perm.npz"
        FastALS(factors=2, iterations=1, random_state=0).fit(data).save(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_file_keeps_the_defaults_in_force(tmp_path, data):
    # A model trained with the objective-dependent defaults (None) is saved
    # with their values, so a later change of the defaults cannot change it.
    model = fitted(data)
    assert model.get_params()["regularization"] is None
    save_model(model, tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    for name in ("factors", "regularization", "use_bias", "weighted_regularization",
                 "regularization_exponent"):
        assert loaded.get_params()[name] == getattr(model, name), name
