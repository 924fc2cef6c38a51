"""Property tests (hypothesis) for the classes of defect of issue 17.

Not the instances the review found, but the classes they belong to:

* all or nothing: on random small models, random operations with random
  (often bad) inputs, and failures injected at random internal steps, any
  call that raises leaves every attribute bitwise unchanged, and any call
  that succeeds leaves a consistent model;
* ids: random int64, uint64 (>= 2**63 included) and string ids round-trip
  through fit, predict, recommend, similar_items, save and load;
* duplicates: every input path (triplets, sparse matrix to fit, sparse
  matrix / tuple / dict to fold-in) gives the same entries under every
  policy.
"""

import os
import tempfile
from contextlib import ExitStack
from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastals.model as model_module
import fastals.recommend as recommend_module
from fastals import FastALS, FastALSError
from fastals._input import to_csr
from fastals.recommend import RecommenderMixin

from model_state import assert_unchanged, snapshot

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

TOP = 2 ** 63
ID_KINDS = {
    "int": st.integers(-(2 ** 63), 2 ** 63 - 1),
    "small": st.integers(-3, 12),
    "uint": st.integers(TOP - 3, TOP + 12) | st.integers(TOP, 2 ** 64 - 1),
    "str": st.sampled_from(["a", "b", "zz", "é", "10", "x y", ""]),
}


def _id_array(values, kind):
    if kind == "uint":
        return np.array(values, np.uint64)
    if kind in ("int", "small"):
        return np.array(values, np.int64)
    return np.array(values)


@st.composite
def rated(draw, min_rows=2, max_ratings=30):
    """Random triplets ``(users, items, values)`` and the id kinds."""
    ku = draw(st.sampled_from(sorted(ID_KINDS)))
    ki = draw(st.sampled_from(sorted(ID_KINDS)))
    size = draw(st.integers(min_rows, max_ratings))
    users = _id_array(draw(st.lists(ID_KINDS[ku], min_size=size, max_size=size)), ku)
    items = _id_array(draw(st.lists(ID_KINDS[ki], min_size=size, max_size=size)), ki)
    values = np.array(draw(st.lists(st.integers(1, 5), min_size=size, max_size=size)),
                      float)
    return users, items, values


@st.composite
def models(draw):
    users, items, values = draw(rated())
    kw = draw(st.sampled_from([
        {}, {"use_bias": True}, {"objective": "implicit"},
        {"objective": "dense"}, {"weighted_regularization": True},
        {"solver": "cg"}, {"nonnegative": True},
    ]))
    model = FastALS(factors=draw(st.integers(1, 3)), iterations=2, random_state=0,
                    regularization=0.1, dtype=draw(st.sampled_from([np.float32,
                                                                    np.float64])),
                    duplicates=draw(st.sampled_from(["sum", "mean", "last", "error"])),
                    **kw)
    try:
        model.fit((users, items, values))
    except FastALSError:
        model = FastALS(factors=2, iterations=1, random_state=0).fit(
            (np.arange(3), np.arange(3), np.ones(3)))
    return model


def _consistent(model):
    m, k = model.user_factors.shape
    n = model.item_factors.shape[0]
    assert model.item_factors.shape == (n, k)
    assert model.user_biases.shape == (m,) and model.item_biases.shape == (n,)
    for ids, size in ((model.user_ids, m), (model.item_ids, n)):
        assert ids is None or ids.shape == (size,)
        assert ids is None or np.unique(ids).size == size
    assert model._user_items.shape == (m, n)
    assert model._user_items.has_sorted_indices
    model.recommend_all(n=2)


@st.composite
def some_ids(draw, model, side):
    """A list of ids: known ones, new ones of any kind, maybe repeated."""
    known = model._raw_of(side, np.arange(model._n(side))).tolist()
    pool = st.sampled_from(known) | ID_KINDS[draw(st.sampled_from(sorted(ID_KINDS)))]
    return draw(st.lists(pool, min_size=0, max_size=4))


@st.composite
def some_rows(draw, n_rows, n_cols):
    """A matrix in one of the accepted forms, sometimes malformed."""
    form = draw(st.sampled_from(["csr", "coo_dups", "dense", "bad_shape", "nan",
                                 "dict", "1d"]))
    rows = draw(st.integers(0, max(n_rows, 0)))
    if form == "bad_shape":
        return np.ones((rows, n_cols + 1))
    if form == "dict":
        return {0: 1.0}
    if form == "1d":
        return np.ones(n_cols)
    dense = np.array(draw(st.lists(st.sampled_from([0.0, 0.0, 1.0, 3.0]),
                                   min_size=rows * n_cols, max_size=rows * n_cols)),
                     float).reshape(rows, n_cols)
    if form == "nan" and dense.size:
        dense.flat[draw(st.integers(0, dense.size - 1))] = np.nan
        return dense
    if form == "coo_dups":
        r, c = np.nonzero(dense)
        r, c = np.r_[r, r[:1]], np.r_[c, c[:1]]
        return sp.coo_matrix((np.ones(r.size), (r, c)), shape=dense.shape)
    return sp.csr_matrix(dense) if form == "csr" else dense


INJECT = [
    (RecommenderMixin, "_fold_rows"), (RecommenderMixin, "_fold_in"),
    (RecommenderMixin, "_index_of"), (RecommenderMixin, "_grown_ids"),
    (recommend_module, "_replace_lines"), (model_module, "to_csr"),
    (model_module.FastALS, "_half_step"), (model_module.FastALS, "_loss"),
    (model_module.FastALS, "_store"), (model_module.FastALS, "_remember_training"),
]


class Injected(RuntimeError):
    pass


def _inject(stack, owner, name, after):
    original = getattr(owner, name)
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > after:
            raise Injected(name)
        return original(*args, **kwargs)
    stack.enter_context(mock.patch.object(owner, name, failing))


@SETTINGS
@given(models(), st.data())
def test_any_failure_leaves_every_attribute_unchanged(model, data):
    for _ in range(3):
        op = data.draw(st.sampled_from(["partial_fit_users", "partial_fit_items",
                                        "fit", "set_params", "recalculate_user"]))
        side = "item" if op == "partial_fit_items" else "user"
        other = "user" if side == "item" else "item"
        if op.startswith("partial_fit"):
            ids = data.draw(some_ids(model, side))
            args = (ids, data.draw(some_rows(len(ids) + data.draw(st.integers(-1, 1)),
                                             model._n(other))))
        elif op == "fit":
            users, items, values = data.draw(rated(min_rows=1))
            if data.draw(st.booleans()):
                values[0] = data.draw(st.sampled_from([np.nan, np.inf]))
            args = ((users, items, values),)
        elif op == "set_params":
            args = ()
        else:
            args = (data.draw(some_rows(1, model._n("item"))),)
        snap = snapshot(model)
        with ExitStack() as stack:
            if data.draw(st.booleans()):
                owner, name = data.draw(st.sampled_from(INJECT))
                _inject(stack, owner, name, data.draw(st.integers(0, 3)))
            try:
                if op == "set_params":
                    model.set_params(**{data.draw(st.sampled_from(
                        ["factors", "factor", "alpha"])): 3,
                        data.draw(st.sampled_from(["iterations", "bogus"])): 2})
                else:
                    getattr(model, op)(*args)
            except (FastALSError, ValueError, TypeError, Injected):
                assert_unchanged(model, snap)
                continue
        if op == "recalculate_user":
            assert_unchanged(model, snap)
        if op != "set_params":
            _consistent(model)


@settings(SETTINGS, max_examples=25)
@given(rated(), st.data())
def test_ids_round_trip(data_, draw):
    users, items, values = data_
    model = FastALS(factors=2, iterations=2, random_state=0, dtype=np.float64)
    model.fit((users, items, values))
    for ids, raw in ((model.user_ids, users), (model.item_ids, items)):
        assert ids.dtype.kind == raw.dtype.kind
        assert ids.tolist() == sorted(set(raw.tolist()))
    pick = draw.draw(st.integers(0, users.size - 1))
    u, i = users[pick], items[pick]
    # as numpy scalars and as plain Python values
    p = model.predict(u, i)
    assert model.predict(u.item(), i.item()) == p
    rec_ids, _ = model.recommend(u.item(), n=3, filter_already_liked_items=False)
    assert rec_ids.dtype == model.item_ids.dtype
    assert set(rec_ids.tolist()) <= set(items.tolist())
    if not model.item_factors[model._index_of("item", i)].any():
        with pytest.raises(FastALSError, match="no ratings"):
            model.similar_items(i.item(), n=2)
        return
    sim_ids, sim = model.similar_items(i.item(), n=2)
    assert sim_ids.dtype == model.item_ids.dtype
    assert set(sim_ids.tolist()) <= set(items.tolist())
    assert np.all(sim <= 1 + 1e-9)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "m.npz")
        model.save(path)
        back = FastALS.load(path)
    np.testing.assert_array_equal(back.user_ids, model.user_ids)
    np.testing.assert_array_equal(back.item_ids, model.item_ids)
    assert back.user_ids.dtype == model.user_ids.dtype
    assert back.predict(u.item(), i.item()) == p
    np.testing.assert_array_equal(
        back.recommend(u, n=3)[0], model.recommend(u, n=3)[0])


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4),
                          st.sampled_from([1.0, 2.0, -1.0, 5.0])),
                min_size=1, max_size=25),
       st.sampled_from(["sum", "mean", "last", "error"]))
def test_every_input_path_follows_the_duplicates_policy(entries, policy):
    r, c, v = (np.array(x) for x in zip(*entries))
    groups = {}
    for key in zip(r.tolist(), c.tolist()):
        groups.setdefault(key, 0)
        groups[key] += 1
    has_dups = max(groups.values()) > 1
    ref = {}
    for key, val in zip(zip(r.tolist(), c.tolist()), v.tolist()):
        ref.setdefault(key, []).append(val)
    combine = {"sum": sum, "mean": lambda x: sum(x) / len(x), "last": lambda x: x[-1],
               "error": lambda x: x[0]}[policy]
    expect = {key: combine(vals) for key, vals in ref.items()}
    expect = {key: val for key, val in expect.items() if val != 0}

    def entries_of(csr, row_ids=None, col_ids=None):
        coo = csr.tocoo()
        rid = (lambda x: x) if row_ids is None else (lambda x: row_ids[x].item())
        cid = (lambda x: x) if col_ids is None else (lambda x: col_ids[x].item())
        return {(rid(a), cid(b)): val for a, b, val in zip(coo.row.tolist(),
                                                            coo.col.tolist(),
                                                            coo.data.tolist())}

    n_cols = 5
    coo = sp.coo_matrix((v, (r, c)), shape=(4, n_cols))
    model = FastALS(factors=1, iterations=1, duplicates=policy, random_state=0).fit(
        sp.csr_matrix(np.ones((4, n_cols))))
    paths = {
        "triplets": lambda: entries_of(*to_csr((r, c, v), policy)),
        "sparse fit": lambda: entries_of(to_csr(coo, policy)[0]),
        "sparse fold-in": lambda: entries_of(model._fold_rows("user", coo)[0]),
    }
    first = int(r[0])
    mask = r == first
    paths_one_row = {
        "tuple fold-in": lambda: entries_of(model._fold_rows(
            "user", (c[mask], v[mask]))[0]),
        "sparse one-row fold-in": lambda: entries_of(model._fold_rows(
            "user", sp.coo_matrix((v[mask], (np.zeros(mask.sum(), int), c[mask])),
                                  shape=(1, n_cols)))[0]),
    }
    if policy == "error" and has_dups:
        for run in paths.values():
            with pytest.raises(FastALSError, match="duplicate"):
                run()
        return
    for name, run in paths.items():
        got = run()
        got = {key: val for key, val in got.items() if val != 0}
        assert got.keys() == expect.keys(), name
        for key in expect:
            assert got[key] == pytest.approx(expect[key]), name
    row_dups = max(groups[key] for key in groups if key[0] == first) > 1
    want = {(0, b): val for (a, b), val in expect.items() if a == first}
    for name, run in paths_one_row.items():
        if policy == "error" and row_dups:
            with pytest.raises(FastALSError, match="duplicate"):
                run()
            continue
        got = {key: val for key, val in run().items() if val != 0}
        assert got.keys() == want.keys(), name
        for key in want:
            assert got[key] == pytest.approx(want[key]), name
