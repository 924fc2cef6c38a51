"""FastALS on a Dask cluster equals FastALS on one machine.

A LocalCluster of 2 single-threaded worker processes on the loopback
interface is started once for the module and closed at its end.  Skipped
when ``dask.distributed`` is not installed (extra ``fastals[dask]``).
"""

import gc
import os
import signal
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (extra fastals[dask])")
pd = pytest.importorskip("pandas", reason="pandas is not installed (needed by dask.dataframe)")
dd = pytest.importorskip("dask.dataframe", reason="dask.dataframe is not installed")

from fastals import FastALS  # noqa: E402
from fastals.distributed import connect, kept_environ  # noqa: E402
from fastals.exceptions import FastALSError, InputError  # noqa: E402
from fastals.synthetic import make_ratings  # noqa: E402

TOL = 1e-4  # max abs difference of the factors, float64 (the bar)


@pytest.fixture(scope="module")
def client():
    # Dask's nanny leaves OMP/OPENBLAS_NUM_THREADS=1 in this process's
    # environment whenever it (re)starts a worker, and later tests'
    # subprocesses would run single-threaded: restore it at the end.
    with kept_environ():
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None, silence_logs=40)
        c = distributed.Client(cluster)
        yield c
        c.close()
        cluster.close()


def _pair(X, client, fit_kwargs=None, **params):
    params = dict(dict(factors=8, iterations=3, dtype=np.float64, random_state=3,
                       regularization=0.1), **params)
    one = FastALS(**params).fit(X[0] if isinstance(X, list) else X)
    two = FastALS(**params).fit(X[1] if isinstance(X, list) else X, client=client,
                                **(fit_kwargs or {}))
    return one, two


def _assert_same(one, two):
    for key in ("user_ids", "item_ids"):
        a, b = getattr(one, key), getattr(two, key)
        if a is None:
            assert b is None
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert one.user_factors.shape == two.user_factors.shape
    assert np.abs(one.user_factors - two.user_factors).max() <= TOL
    assert np.abs(one.item_factors - two.item_factors).max() <= TOL
    assert np.abs(one.user_biases - two.user_biases).max() <= TOL
    assert np.abs(one.item_biases - two.item_biases).max() <= TOL
    assert one.global_mean == pytest.approx(two.global_mean, rel=1e-12)
    assert one.solver_report == two.solver_report
    np.testing.assert_allclose(two.loss_history, one.loss_history, rtol=1e-6)
    np.testing.assert_allclose(two.objective_history, one.objective_history,
                               rtol=1e-6)


def _synthetic(implicit=False, n=(300, 200, 6000)):
    r = make_ratings(*n, implicit=implicit, seed=1)
    # Sparse, shuffled integer ids and string item ids: the mapping is tested.
    rng = np.random.default_rng(0)
    users = rng.permutation(10 * n[0])[: n[0]][r.user_ids - r.user_ids.min()] * 3
    items = np.array([f"i{x:05d}" for x in r.item_ids], dtype=object)
    return users, items, r.values


@pytest.mark.parametrize("objective", ["explicit", "implicit"])
def test_synthetic_dataframe_equals_single_machine(client, objective):
    users, items, values = _synthetic(objective == "implicit")
    # Repeated pairs too, combined the same way ("sum") on the cluster.
    users = np.concatenate([users, users[:50]])
    items = np.concatenate([items, items[:50]])
    values = np.concatenate([values, values[:50]])
    frame = pd.DataFrame({"u": users, "i": items, "r": values})
    ddf = dd.from_pandas(frame, npartitions=4)
    one, two = _pair([(users, items, values), ddf], client,
                     fit_kwargs={"columns": ("u", "i", "r")}, objective=objective)
    _assert_same(one, two)
    assert two._user_items is None  # the ratings stayed on the cluster
    assert two.cluster_stats_["user_blocks"] == 2


@pytest.mark.parametrize("objective", ["explicit", "implicit"])
def test_ml100k_equals_single_machine(client, ml100k, objective):
    d = np.loadtxt(ml100k / "u.data", dtype=np.int64)
    frame = pd.DataFrame({"user": d[:, 0], "item": d[:, 1], "rating": d[:, 2] * 1.0})
    ddf = dd.from_pandas(frame, npartitions=3)
    one, two = _pair([(d[:, 0], d[:, 1], d[:, 2] * 1.0), ddf], client,
                     objective=objective)
    _assert_same(one, two)


@pytest.mark.parametrize("params", [
    dict(objective="dense"),
    dict(objective="dense", weighted_regularization=True),
    dict(objective="explicit", solver="cg", use_bias=True,
         weighted_regularization=True, regularization_exponent=0.5),
    dict(objective="implicit", nonnegative=True, weighted_regularization=True,
         confidence="log"),
    dict(objective="explicit", iterations=30, tol=1e-2),
], ids=["dense", "dense-wr", "cg-bias-wr", "implicit-nnls-wr", "tol"])
def test_every_option_equals_single_machine(client, params):
    # Local (scattered) input, three blocks per side on two workers: the
    # three objectives, the three row solvers (Cholesky in the tests above),
    # biases, weighted regularization (also with an exponent).
    X = _synthetic(params["objective"] == "implicit", n=(150, 90, 2000))
    one, two = _pair(X, client, fit_kwargs={"blocks": 3}, **params)
    _assert_same(one, two)
    if "tol" in params:  # both stopped early, after the same epoch
        assert len(two.loss_history) < params["iterations"]
    assert two.cluster_stats_["user_blocks"] == 3
    assert two._user_items is not None  # the input was on the client anyway


def test_divergence_guard_as_on_one_machine(client, monkeypatch):
    """The cluster runs the divergence guard of one machine (fastals._guard)
    on the same numbers: the same sampled entries' error, scale, largest
    target and entry, and the objective's zero-factor scale; its error
    stops the fit and leaves the model as it was."""
    from fastals import _guard
    from fastals.exceptions import NumericalError
    seen = {"one": [], "two": []}
    run = ["one"]
    judge, monotone = _guard.judge_blowup, _guard.check_monotone

    def spy_judge(model, err, base, t_max, nx, ny, entry_max, epoch):
        seen[run[0]].append((epoch, err, base, t_max, entry_max()))
        if run[0] == "three" and epoch == 2:
            err = 1e300
        return judge(model, err, base, t_max, nx, ny, entry_max, epoch)

    def spy_monotone(model, dtype, epoch, zero_loss):
        seen[run[0]].append((epoch, zero_loss, model.objective_history[-1]))
        return monotone(model, dtype, epoch, zero_loss)
    monkeypatch.setattr(_guard, "judge_blowup", spy_judge)
    monkeypatch.setattr(_guard, "check_monotone", spy_monotone)
    X = _synthetic(n=(150, 90, 2000))
    params = dict(factors=4, iterations=3, dtype=np.float64, random_state=0,
                  use_bias=True, regularization=0.1)
    FastALS(**params).fit(X)
    run[0] = "two"
    FastALS(**params).fit(X, client=client, blocks=3)
    assert len(seen["one"]) == len(seen["two"]) == 6
    for a, b in zip(seen["one"], seen["two"]):
        assert a[0] == b[0]
        np.testing.assert_allclose(b[1:], a[1:], rtol=1e-6)
    run[0], seen["three"] = "three", []
    model = FastALS(**params)
    with pytest.raises(NumericalError, match="diverged at epoch 2"):
        model.fit(X, client=client, blocks=3)
    assert not hasattr(model, "user_factors")


def test_fitted_model_is_ordinary(client, tmp_path, monkeypatch):
    import scipy.sparse as sp
    r = make_ratings(120, 80, 1500, seed=2)
    R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)))
    model = FastALS(factors=4, iterations=3, random_state=0,
                    dtype=np.float64).fit(R, client=client)
    assert model.user_ids is None and model.user_factors.dtype == np.float64
    ids, scores = model.recommend(0, 5)
    assert ids.size == 5 and not set(ids) & set(R[0].indices)
    path = tmp_path / "m.npz"
    model.save(path)
    # Loads and recommends where dask cannot be imported.
    for name in [n for n in sys.modules if n.split(".")[0] in ("dask", "distributed")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    loaded = FastALS.load(path)
    assert np.array_equal(loaded.user_factors, model.user_factors)
    assert np.array_equal(loaded.recommend(0, 5, user_items=R)[0], ids)


def test_missing_columns(client):
    ddf = dd.from_pandas(pd.DataFrame({"user": [1, 2], "movie": [1, 2],
                                       "rating": [1.0, 2.0]}), npartitions=1)
    with pytest.raises(InputError, match="no column.*'item'.*columns="):
        FastALS(factors=2, iterations=1).fit(ddf, client=client)


def test_mixed_id_types(client):
    import dask
    a = pd.DataFrame({"user": ["a", "b"], "item": [1, 2], "rating": [1.0, 2.0]})
    b = pd.DataFrame({"user": [1, 2], "item": [1, 2], "rating": [1.0, 2.0]})
    ddf = dd.from_delayed([dask.delayed(a), dask.delayed(b)], meta=a,
                          verify_meta=False)
    with pytest.raises(InputError, match="'user' mixes id types"):
        FastALS(factors=2, iterations=1).fit(ddf, client=client)
    with dask.config.set({"dataframe.convert-string": False}):
        mixed = dd.from_pandas(pd.DataFrame({
            "user": np.array([1, "a", 2], dtype=object), "item": [1, 2, 3],
            "rating": [1.0, 2.0, 3.0]}), npartitions=1)
    with pytest.raises(InputError, match="'user' mixes id types"):
        FastALS(factors=2, iterations=1).fit(mixed, client=client)


def test_options_need_a_client():
    with pytest.raises(InputError, match="only with client="):
        FastALS(factors=2).fit((np.array([1]), np.array([1]), np.array([1.0])),
                               blocks=2)


def test_unreachable_scheduler():
    with pytest.raises(FastALSError, match="cannot reach the Dask scheduler at "
                                           "tcp://127.0.0.1:9"):
        with connect("tcp://127.0.0.1:9", timeout=2):
            pass
    with pytest.raises(InputError, match="local:N"):
        with connect("local:zero"):
            pass


def _cli(*args):
    from click.testing import CliRunner
    from fastals.cli import main
    return CliRunner().invoke(main, [str(a) for a in args])


def test_cli_train_dask(tmp_path):
    r = make_ratings(120, 80, 1500, seed=5)
    data = tmp_path / "r.tsv"
    data.write_text("".join(f"{u + 1}\t{i + 1}\t{int(v)}\n"
                            for u, i, v in zip(r.user_ids, r.item_ids, r.values)))
    common = ["train", "--data", data, "--iterations", 3, "--log-every", 1,
              "--dtype", "float64", "--factors", 4]
    one = _cli(*common, "-o", tmp_path / "one.npz")
    before = dict(os.environ)
    # local:1 starts and closes a LocalCluster, and leaves os.environ as it
    # was (distributed's nanny sets OMP_NUM_THREADS=1 and more in it).
    two = _cli(*common, "-o", tmp_path / "two.npz", "--dask", "local:1")
    assert dict(os.environ) == before
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    losses = [l.split(", time")[0] for l in two.output.splitlines()
              if l.startswith("Iteration")]
    assert len(losses) == 3
    assert losses == [l.split(", time")[0] for l in one.output.splitlines()
                      if l.startswith("Iteration")]
    a, b = FastALS.load(tmp_path / "one.npz"), FastALS.load(tmp_path / "two.npz")
    assert np.array_equal(a.user_ids, b.user_ids)
    assert np.abs(a.user_factors - b.user_factors).max() <= TOL


def test_cli_unreachable_scheduler(tmp_path):
    out = _cli("train", "--iterations", 1, "--dask", "tcp://127.0.0.1:9")
    assert out.exit_code == 1
    last = out.output.splitlines()[-1]
    assert last.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert sum(l.startswith("Error:") for l in out.output.splitlines()) == 1
    assert "Traceback" not in out.output


def test_pandas_table_with_client_equals_single_machine(client):
    """A pandas table is read as ``fit`` reads it (names found, or
    ``columns=``), then scattered."""
    users, items, values = _synthetic(n=(120, 80, 1500))
    frame = pd.DataFrame({"userId": users, "movieId": items, "stars": values})
    one, two = _pair(frame, client, fit_kwargs={"columns": ("userId", "movieId", "stars")})
    _assert_same(one, two)
    plain = FastALS(factors=8, iterations=3, dtype=np.float64, random_state=3,
                    regularization=0.1).fit(frame, columns=("userId", "movieId", "stars"))
    assert np.array_equal(plain.user_factors, one.user_factors)


def _killer(client, at_epoch):
    """A callback that kills a worker process at ``at_epoch``, and the worker."""
    victim = sorted(client.scheduler_info()["workers"])[1]
    pid = client.run(os.getpid, workers=[victim])[victim]

    def kill(epoch, loss, seconds):
        if epoch == at_epoch:
            os.kill(pid, signal.SIGKILL)
        return False
    return kill, victim


def _scheduler_tasks(client):
    return client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))


def _settles(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.02)
    return cond()


def test_fit_releases_its_data_on_the_cluster(client, monkeypatch):
    """When a fit returns, the workers drop its blocks and factors without
    waiting for Python's cyclic garbage collector.  Dask raises its wait
    timeouts from a frame that holds the exception (a reference cycle), so
    the futures of a fit used to live on in the traceback's frames: worker
    memory grew fit after fit until the collector happened to run.  A tiny
    poll interval makes every wait time out many times."""
    import fastals.distributed as fd
    monkeypatch.setattr(fd, "POLL", 1e-3)
    X = _synthetic()
    gc.collect()
    before = _scheduler_tasks(client)
    gc.disable()
    try:
        FastALS(factors=8, iterations=3, random_state=0).fit(X, client=client)
        assert _settles(lambda: not client.refcount), dict(client.refcount)
        assert _settles(lambda: _scheduler_tasks(client) <= before)
    finally:
        gc.enable()


def test_worker_lost_mid_fit_restarts(client):
    """A worker killed mid-fit: the fit restarts on the blocks rebuilt from
    the client's copy, and gives the model of one machine."""
    X = _synthetic(n=(150, 90, 2000))
    kill, victim = _killer(client, 2)
    one = FastALS(factors=4, iterations=4, random_state=0, dtype=np.float64).fit(X)
    seen = []
    two = FastALS(factors=4, iterations=4, random_state=0, dtype=np.float64,
                  callback=lambda e, l, s: seen.append(e) or kill(e, l, s))
    with pytest.warns(RuntimeWarning, match=f"worker {victim} was lost.*restarting"):
        two.fit(X, client=client)
    assert seen == [1, 2, 3, 4]  # each epoch reported once
    assert two.cluster_stats_["restarts"] == 1
    _assert_same(one, two)
    client.wait_for_workers(2, timeout=60)


def test_worker_lost_mid_fit_error(client, monkeypatch):
    """No restart left: one line naming the worker; the model is untouched."""
    import fastals.distributed as fd
    monkeypatch.setattr(fd, "RETRIES", 0)
    X = _synthetic(n=(150, 90, 2000))
    kill, victim = _killer(client, 2)
    model = FastALS(factors=4, iterations=30, random_state=0, callback=kill,
                    dtype=np.float64)
    with pytest.raises(FastALSError, match=f"Dask worker {victim} was lost mid-fit") as err:
        model.fit(X, client=client)
    assert "\n" not in str(err.value)
    assert not hasattr(model, "user_factors")  # all or nothing
    # The last test of the module: the cluster closes without waiting for
    # the nanny to restart the worker.
