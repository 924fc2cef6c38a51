"""Issue 16: every input is read as the user meant it, or refused.

Each case either trains on what the user meant or stops with one line
(CLI) / an exception (Python) naming the problem and the fix.
"""

import bz2
import gzip
import inspect
import json
import re
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from fastals import FastALS, InputError
from fastals.cli import main
from fastals.data import Ratings, load, read_ratings
from fastals.exceptions import DataFormatError, DataWarning


def run(*args, env=None):
    res = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in res.output
    return res


def table(n_users=40, n_items=30, n=400, seed=0, stars=True):
    """A realistic small ratings table: ids 1.., stars 1-5, Unix times."""
    rng = np.random.default_rng(seed)
    keys = rng.choice(n_users * n_items, n, replace=False)
    users, items = keys // n_items + 1, keys % n_items + 1
    values = rng.integers(1, 6, n).astype(np.float64) if stars else \
        rng.integers(1, 50, n).astype(np.float64)
    ts = 881250949 + rng.integers(0, 10 ** 7, n)
    return Ratings(users, items, values, ts)


def write_csv(path, t, header=("userId", "movieId", "rating", "timestamp"),
              order=(0, 1, 2, 3), sep=","):
    cols = [t.user_ids, t.item_ids, t.values.astype(int), t.timestamps]
    lines = [sep.join(header[k] for k in order)] if header else []
    lines += [sep.join(str(cols[k][j]) for k in order) for j in range(t.values.size)]
    path.write_text("\n".join(lines) + "\n")
    return path


def fit(X, columns=None, **kw):
    return FastALS(factors=3, iterations=2, **kw).fit(X, columns=columns)


def same_model(a, b):
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)


# ------------------------------------------------------------------ columns
def test_unfamiliar_rating_header_is_the_only_numeric_column(tmp_path):
    t = table()
    path = write_csv(tmp_path / "r.csv", t, ("userId", "movieId", "my_score", "ts"))
    r = read_ratings(path)
    np.testing.assert_array_equal(r.values, t.values)  # not all 1s
    assert "rating=my_score" in r.info.describe()
    assert "only other numeric column" in r.info.describe()
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2)
    assert res.exit_code == 0, res.output
    loaded = res.stdout.splitlines()[0]
    assert loaded.startswith("Loaded 400 ratings") and "rating=my_score" in loaded


def test_user_and_item_only_is_implicit_and_says_so(tmp_path):
    path = tmp_path / "clicks.csv"
    path.write_text("user_id,item_id\n1,2\n1,3\n2,2\n")
    r = read_ratings(path)
    assert r.implicit and r.values.tolist() == [1.0, 1.0, 1.0]
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2,
              "--objective", "implicit")
    assert res.exit_code == 0, res.output
    assert "no rating column: implicit feedback" in res.stdout.splitlines()[0]
    assert "Warning" not in res.stderr
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2)
    assert "Warning:" in res.stderr and "--objective implicit" in res.stderr


def test_ambiguous_or_unnamed_columns_are_refused(tmp_path):
    two = tmp_path / "two.csv"
    two.write_text("user,item,a,b\n1,2,5,7\n2,2,4,8\n")
    with pytest.raises(DataFormatError, match="'a', 'b' could each be it.*columns="):
        read_ratings(two)
    assert read_ratings(two, columns=("user", "item", "b")).values.tolist() == [7, 8]
    odd = tmp_path / "odd.csv"
    odd.write_text("who,what,stars\n1,2,5\n")
    with pytest.raises(DataFormatError, match="cannot tell the user and item column"):
        read_ratings(odd)
    res = run("train", "--data", odd, "--epochs", 1)
    assert res.exit_code == 1 and res.stderr.count("\n") == 1
    assert "--columns" in res.stderr


def test_wrong_order_without_header_warns(tmp_path):
    t = table()
    path = write_csv(tmp_path / "r.tsv", t, header=None, order=(2, 0, 1, 3), sep="\t")
    with pytest.warns(DataWarning, match=r"column 0 \(read as user ids\) has only 5 "):
        r = read_ratings(path)
    assert r.info.warnings
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2)
    warn = [l for l in res.stderr.splitlines() if l.startswith("Warning:")]
    assert len(warn) == 1 and "--columns" in warn[0]
    # the fix the warning names works, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fixed = read_ratings(path, columns=(1, 2, 0, 3))
    np.testing.assert_array_equal(fixed.values, t.values)


def test_plausible_headerless_file_reads_silently(tmp_path):
    path = write_csv(tmp_path / "u.data", table(), header=None, sep="\t")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = read_ratings(path)
    assert "by position" in r.info.describe()


# ------------------------------------------------------ DataFrames, arrays
def test_dataframe_gives_bitwise_the_same_model_as_triplets():
    pd = pytest.importorskip("pandas")
    t = table()
    df = pd.DataFrame({"timestamp": t.timestamps, "rating": t.values,
                       "movieId": t.item_ids, "userId": t.user_ids})
    a = fit(df)
    b = fit((t.user_ids, t.item_ids, t.values))
    same_model(a, b)
    assert a.user_ids.tolist() == b.user_ids.tolist()
    renamed = df.rename(columns={"userId": "cust", "movieId": "sku"})
    with pytest.raises(InputError, match="columns="):
        fit(renamed)
    same_model(fit(renamed, columns=("cust", "sku", "rating")), b)


@pytest.mark.parametrize("lib", ["pyarrow", "polars"])
def test_arrow_and_polars_tables(lib):
    mod = pytest.importorskip(lib)
    t = table()
    cols = {"user": t.user_ids, "item": t.item_ids, "rating": t.values}
    X = mod.table(cols) if lib == "pyarrow" else mod.DataFrame(cols)
    same_model(fit(X), fit((t.user_ids, t.item_ids, t.values)))


def test_dense_arrays_and_rows_are_never_guessed():
    t = table()
    rows = np.column_stack([t.user_ids, t.item_ids, t.values])
    with pytest.raises(InputError, match=r"fit\(\(X\[:, 0\], X\[:, 1\], X\[:, 2\]\)\)"):
        fit(rows)
    with pytest.raises(InputError, match=r"list of 400 rows.*tuple\(zip\(\*rows\)\)"):
        fit([tuple(r) for r in rows])
    dense = np.array([[5.0, 0, 1], [0, 2, 0], [2, 3, 0]])
    with pytest.raises(InputError, match="csr_matrix"):
        fit(dense)
    fit(sp.csr_matrix(dense))  # asked for explicitly
    pd = pytest.importorskip("pandas")
    with pytest.raises(InputError, match="no names"):
        fit(pd.DataFrame(rows))
    same_model(fit(pd.DataFrame(rows), columns=(0, 1, 2)),
               fit((t.user_ids, t.item_ids, t.values)))


# -------------------------------------------------------------- duplicates
def test_explicit_duplicates_keep_the_latest_rating():
    r = Ratings(np.array([1, 1, 2]), np.array([7, 7, 7]), np.array([4.0, 5.0, 3.0]),
                np.array([200, 100, 50]))
    csr, _, _ = r.to_csr()
    assert csr[0, 0] == 4.0  # the later timestamp, not 9 and not the last line
    m = FastALS(factors=2, iterations=1).fit(r)
    assert m._user_items[0, 0] == 4.0
    m = FastALS(factors=2, iterations=1).fit(r[:3])  # no timestamps: last line
    assert m._user_items[0, 0] == 5.0
    m = FastALS(factors=2, iterations=1, objective="implicit").fit(r[:3])
    assert m._user_items[0, 0] == 9.0  # counts add up
    with pytest.raises(InputError, match="1 duplicate .*--duplicates"):
        FastALS(factors=2, duplicates="error").fit(r)


def test_cli_reports_merged_pairs_and_takes_duplicates(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,5,2\n1,10,4,1\n"
                    "2,10,3,1\n2,20,1,1\n")
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2)
    assert res.exit_code == 0, res.output
    assert "1 repeated (user, item) rating(s) merged (kept the latest by " \
           "timestamp" in res.stdout
    res = run("train", "--data", path, "--epochs", 1, "--duplicates", "error")
    assert res.exit_code == 1 and "duplicate" in res.stderr


# ----------------------------------------------------------------- defaults
def test_cli_options_are_fastals_parameters_with_its_defaults():
    from fastals._cli_params import cli_names, parameters
    opts = {p.name: p for p in main.commands["train"].params}
    sig = inspect.signature(FastALS.__init__).parameters
    for name in sig:
        if name in ("self", "callback"):
            continue
        assert name in opts, f"FastALS parameter {name} has no CLI option"
        default = sig[name].default
        got = opts[name].default
        if name == "dtype":
            assert np.dtype(got) == np.dtype(default)
        else:
            assert got == default, name
    assert {"--regularization-exponent", "--unobserved-weight", "--confidence",
            "--duplicates", "--nonnegative", "--tol", "--cg-steps"} <= {
                o for n, _ in parameters() for o in cli_names(n)} | {
                o for p in opts.values() for o in p.opts}


def test_cli_and_python_train_the_same_model(tmp_path):
    t = table()
    path = write_csv(tmp_path / "r.csv", t)
    out = tmp_path / "m.npz"
    res = run("train", "--data", path, "--epochs", 3, "--factors", 4, "--ids",
              "observed", "-o", out)
    assert res.exit_code == 0, res.output
    cli = FastALS.load(out)
    py = FastALS(factors=4, iterations=3).fit(load(path))  # seeded by default
    same_model(cli, py)
    again = FastALS(factors=4, iterations=3).fit(load(path))
    same_model(py, again)


def test_every_model_parameter_reaches_the_model(tmp_path):
    out = tmp_path / "m.npz"
    res = run("train", "--epochs", 1, "--factors", 2, "--weighted-regularization",
              "--regularization-exponent", 0.5, "--duplicates", "mean",
              "--cg-steps", 2, "--tol", "1e-9", "-o", out)
    assert res.exit_code == 0, res.output
    m = FastALS.load(out)
    assert (m.regularization_exponent, m.duplicates, m.cg_steps, m.tol) == \
        (0.5, "mean", 2, 1e-9)
    res = run("train", "--epochs", 1, "--regularization-exponent", -1)
    assert res.exit_code == 2 and "'--regularization-exponent'" in res.stderr


# ------------------------------------------------ holdout, unknown ids
def test_holdout_prints_a_test_rmse(tmp_path):
    path = write_csv(tmp_path / "r.csv", table(n=600))
    for by in ("random", "user"):
        res = run("train", "--data", path, "--holdout", 0.1, "--holdout-by", by,
                  "--epochs", 2, "--factors", 2)
        assert res.exit_code == 0, res.output
        assert re.search(r"^Test RMSE: \d+\.\d{6} on \d+ ratings", res.stdout, re.M)
        assert "after holding out 0.1" in res.stdout
    res = run("train", "--data", path, "--holdout", 0.1, "--test", path)
    assert res.exit_code == 2


def test_train_and_evaluate_share_the_unknown_id_policy(tmp_path):
    t = table(n=500)
    train_path = write_csv(tmp_path / "train.csv", t.take(np.arange(400)))
    extra = Ratings(np.array([999, 1]), np.array([1, 999]), np.array([3.0, 4.0]),
                    np.array([1, 2]))
    test = t.take(np.arange(400, 500))
    test = Ratings(*(np.concatenate([a, b]) for a, b in zip(test, extra)))
    test_path = write_csv(tmp_path / "test.csv", test)
    out = tmp_path / "m.npz"
    for unknown, note in (("skip", "skipped"), ("predict", "predicted")):
        res = run("train", "--data", train_path, "--test", test_path, "--epochs", 2,
                  "--factors", 2, "--use-bias", "--unknown", unknown, "-o", out)
        assert res.exit_code == 0, res.output
        m = re.search(r"Test RMSE: (\d+\.\d+) on (\d+) ratings \((\d+) (\w+)",
                      res.stdout)
        assert m.group(4) == note
        ev = run("evaluate", out, "--data", test_path, "--unknown", unknown, "--json")
        got = json.loads(ev.stdout)
        assert got["rmse"] == pytest.approx(float(m.group(1)), abs=1e-6)
        assert got["n_used"] == int(m.group(2)) and got["n_unknown"] == int(m.group(3))
        text = run("evaluate", out, "--data", test_path, "--unknown", unknown).stdout
        assert note in text.splitlines()[0]


# ------------------------------------- progress, compression, names, empty
def test_plain_progress_bar_without_tqdm(monkeypatch, capsys):
    import builtins
    real = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name.startswith("tqdm"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    t = table()
    FastALS(factors=2, iterations=3).fit(t, show_progress=True)
    err = capsys.readouterr().err
    assert "3/3 epoch" in err and "100%" in err


@pytest.mark.parametrize("kind", ["gz", "bz2", "zip"])
def test_compressed_inputs(tmp_path, kind):
    t = table()
    plain = write_csv(tmp_path / "ratings.csv", t)
    data = plain.read_bytes()
    path = tmp_path / f"ratings.csv.{kind}"
    if kind == "gz":
        path.write_bytes(gzip.compress(data))
    elif kind == "bz2":
        path.write_bytes(bz2.compress(data))
    else:
        path = tmp_path / "ratings.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("ml-latest-small/ratings.csv", data)
    r = read_ratings(path)
    for a, b in zip(r, read_ratings(plain)):
        np.testing.assert_array_equal(a, b)
    res = run("train", "--data", path, "--epochs", 1, "--factors", 2)
    assert res.exit_code == 0, res.output


def test_compressed_file_that_is_not_compressed(tmp_path):
    path = tmp_path / "r.csv.gz"
    path.write_text("1,2,3\n")
    with pytest.raises(DataFormatError, match="not a gzip file"):
        read_ratings(path)


def test_did_you_mean_a_data_set_name():
    res = run("train", "--data", "ml100k")
    assert res.exit_code == 1 and "did you mean the data set 'ml-100k'" in res.stderr
    from fastals.data import fetch_movielens
    with pytest.raises(InputError, match="did you mean 'ml-1m'"):
        fetch_movielens("ml1m")


def test_similar_and_recommend_refuse_ids_without_ratings(tmp_path):
    path = tmp_path / "r.tsv"
    # item 3 and user 3 exist in the id range but have no ratings
    path.write_text("1\t1\t5\n1\t2\t4\n2\t1\t3\n2\t4\t2\n4\t2\t1\n4\t4\t5\n")
    out = tmp_path / "m.npz"
    res = run("train", "--data", path, "--epochs", 2, "--factors", 2, "--ids",
              "range", "--no-bias", "-o", out)
    assert res.exit_code == 0, res.output
    res = run("similar", out, "--item", 3)
    assert res.exit_code == 1 and "item 3 has no ratings in training" in res.stderr
    assert run("similar", out, "--item", 2).exit_code == 0
    res = run("recommend", out, "--user", 3)
    assert res.exit_code == 1 and "user 3 has no ratings in training" in res.stderr
    assert "--use-bias" in res.stderr  # with biases: a popularity ranking
    biased = tmp_path / "b.npz"
    assert run("train", "--data", path, "--epochs", 2, "--factors", 2, "--ids",
               "range", "--use-bias", "-o", biased).exit_code == 0
    assert run("recommend", biased, "--user", 3).exit_code == 0
    with pytest.raises(InputError, match="no ratings in training"):
        FastALS.load(out).similar_items(3)
