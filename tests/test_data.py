"""Tests of fastals.data: formats, errors, named data sets, downloads."""

import atexit
import hashlib
import http.server
import io
import math
import os
import re
import shutil
import tempfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastals import FastALS
from fastals.data import (DATASETS, DownloadError, Ratings, fetch_movielens,
                          load, read_ratings)
from fastals.data.text import _read_text
from fastals.exceptions import DataFormatError, InputError

# Random tables here are not meant to look like ratings; the plausibility
# warnings are tested in test_inputs.py and test_input_properties.py.
pytestmark = pytest.mark.filterwarnings("ignore::fastals.exceptions.DataWarning")

TABLE = Ratings(np.array([1, 1, 2, 3, 3, 3]), np.array([10, 20, 10, 20, 30, 40]),
                np.array([5.0, 3.0, 4.0, 1.0, 2.5, 4.0]),
                np.array([100, 101, 102, 103, 104, 105]))


def write(path, text):
    Path(path).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def same(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert x is None and y is None
        else:
            assert x.dtype.kind == y.dtype.kind
            np.testing.assert_array_equal(x, y)


def lines(table, sep, header=None):
    rows = [sep.join(str(v.item()) for v in row) for row in zip(*table)]
    return "\n".join(([header] if header else []) + rows) + "\n"


# ------------------------------------------------------------- MovieLens files
def test_movielens_100k_tab_no_header(tmp_path):
    r = read_ratings(write(tmp_path / "u.data", lines(TABLE, "\t")))
    same(r, TABLE)
    assert r.user_ids.dtype == np.int64 and r.values.dtype == np.float64


def test_movielens_1m_double_colon(tmp_path):
    same(read_ratings(write(tmp_path / "ratings.dat", lines(TABLE, "::"))), TABLE)


def test_movielens_20m_csv_with_header(tmp_path):
    text = lines(TABLE, ",", "userId,movieId,rating,timestamp")
    same(read_ratings(write(tmp_path / "ratings.csv", text)), TABLE)


def test_movielens_folder_is_read_through_its_ratings_file(tmp_path):
    write(tmp_path / "ratings.dat", lines(TABLE, "::"))
    same(load(tmp_path), TABLE)


def test_real_ml100k_matches_an_independent_parser(ml100k):
    r = load(ml100k / "ua.base")
    ref = np.loadtxt(ml100k / "ua.base", dtype=np.int64)
    assert r.n_ratings == len(ref) == 90570
    np.testing.assert_array_equal(r.user_ids, ref[:, 0])
    np.testing.assert_array_equal(r.item_ids, ref[:, 1])
    np.testing.assert_array_equal(r.values, ref[:, 2])
    np.testing.assert_array_equal(r.timestamps, ref[:, 3])
    csr, users, items = r.to_csr("auto")
    # ids fill 1..943 and 1..1682 (two items are absent from ua.base).
    assert csr.shape == (943, 1682) and users[0] == 1 and items[-1] == 1682
    assert np.unique(r.item_ids).size == 1680


# ------------------------------------------------------------- generic text
def test_header_names_pick_columns_in_any_order(tmp_path):
    text = "ts;rating;item;user\n" + "\n".join(
        f"{t};{v};{i};{u}" for u, i, v, t in zip(*TABLE)) + "\n"
    same(read_ratings(write(tmp_path / "x.csv", text)), TABLE)


def test_columns_by_name_and_by_position(tmp_path):
    text = "a,who,what,stars\n" + "\n".join(
        f"x,{u},{i},{v}" for u, i, v, _ in zip(*TABLE)) + "\n"
    path = write(tmp_path / "x.csv", text)
    by_name = read_ratings(path, columns=("who", "what", "stars"))
    by_pos = read_ratings(path, columns=(1, 2, 3))
    same(by_name, TABLE[:3] + (None,))
    same(by_pos, by_name)
    with pytest.raises(DataFormatError, match="no column named 'nope'"):
        read_ratings(path, columns=("nope", "what", "stars"))
    with pytest.raises(DataFormatError, match="column 9 does not exist"):
        read_ratings(path, columns=(9, 2, 3))


def test_whitespace_crlf_blank_lines_and_bom(tmp_path):
    text = "\ufeff\r\n" + "\r\n".join(
        f"  {u}   {i} {v}  {t} " for u, i, v, t in zip(*TABLE)) + "\r\n\r\n"
    same(read_ratings(write(tmp_path / "x.txt", text)), TABLE)


def test_string_ids_and_quotes_use_the_exact_parser(tmp_path):
    text = 'user,item,rating\n"alice","the item, 1",5\nbob,x,3.5\n'
    r = read_ratings(write(tmp_path / "x.csv", text))
    assert r.user_ids.tolist() == ["alice", "bob"]
    assert r.item_ids.tolist() == ["the item, 1", "x"]
    assert r.values.tolist() == [5.0, 3.5] and r.timestamps is None
    model = FastALS(factors=2, iterations=1, random_state=0).fit(r[:3])
    assert model.user_ids.tolist() == ["alice", "bob"]


def test_two_columns_give_implicit_ones(tmp_path):
    r = read_ratings(write(tmp_path / "x.tsv", "1\t5\n2\t6\n"))
    assert r.values.tolist() == [1.0, 1.0]


def test_explicit_delimiter_and_header_override(tmp_path):
    path = write(tmp_path / "x.txt", "7|8|2\n9|8|4\n")
    r = read_ratings(path, delimiter="|", header=False)
    assert r.user_ids.tolist() == [7, 9] and r.values.tolist() == [2.0, 4.0]


def test_long_decimals_fall_back_to_the_exact_parser(tmp_path):
    vals = [0.1 + 0.2, 1 / 3, 2.5e-310, 123456789.123456789]
    text = "".join(f"{k},{k},{v!r}\n" for k, v in enumerate(vals))
    r = read_ratings(write(tmp_path / "x.csv", text))
    assert r.values.tolist() == vals


# ------------------------------------------------------------- bad input
BAD_TEXT = [
    ("nonnumeric.csv", "1,2,3\n4,5,abc\n", "line 2: rating 'abc' is not a number"),
    ("nan.csv", "1,2,3\n4,5,nan\n", "line 2: rating 'nan' is not a finite number"),
    ("inf.tsv", "1\t2\t3\n4\t5\t3\n6\t7\t-inf\n", "line 3: rating '-inf' is not a finite"),
    ("cut.dat", "1::2::3::4\n5::6::7::8\n9::1", "line 3 has 2 field(s), expected 4"),
    ("cutcsv.csv", "u,i,r\n1,2,3\n4,5,", "line 3: rating '' is not a number"),
    ("many.csv", "1,2,3\n4,5,6,7\n", "line 2 has more than 3 fields"),
    ("empty.csv", "", "empty file"),
    ("blank.csv", "\n  \n\n", "empty file"),
    ("header_only.csv", "userId,movieId,rating\n", "empty file"),
    ("one_col.txt", "1\n2\n", "needs at least user and item"),
    ("binary.dat", b"\x00\x01\x02garbage", "binary content"),
    ("latin1.csv", "1,2,3\n".encode() + b"\xff\xfe,1,2\n", "line 2 is not UTF-8"),
    ("bad_ts.csv", "1,2,3,100\n4,5,3,later\n", "line 2: timestamp 'later'"),
]


@pytest.mark.parametrize("name,content,message", BAD_TEXT)
def test_bad_text_names_file_and_line(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(DataFormatError) as info:
        read_ratings(path)
    text = str(info.value)
    assert text.startswith(path) and message in text, text
    assert "\n" not in text


@pytest.mark.parametrize("engine", ["numba", "python"])
def test_both_parsers_report_the_same_line(tmp_path, engine):
    path = write(tmp_path / "x.csv", "1,2,3\n\n4,5,6\n7,8,x\n")
    with pytest.raises(DataFormatError, match="line 4: rating 'x'"):
        _read_text(path, engine="python" if engine == "python" else "auto")


def test_missing_unknown_and_folder_errors(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_ratings(tmp_path / "nope.csv")
    write(tmp_path / "x.xlsx", "1,2,3\n")
    with pytest.raises(DataFormatError, match=r"unknown format '\.xlsx'"):
        read_ratings(tmp_path / "x.xlsx")
    assert read_ratings(tmp_path / "x.xlsx", format="text").n_ratings == 1
    with pytest.raises(InputError, match="format must be"):
        read_ratings(tmp_path / "x.xlsx", format="excel")
    (tmp_path / "d").mkdir()
    with pytest.raises(DataFormatError, match="folder without u.data"):
        load(tmp_path / "d")


def test_damaged_binary_formats(tmp_path):
    for name in ("x.mtx", "x.npz"):
        write(tmp_path / name, "not really\n")
        with pytest.raises(DataFormatError, match=name):
            read_ratings(tmp_path / name)
    coo = sp.coo_matrix((np.array([1.0, np.nan]), ([0, 1], [0, 1])), shape=(2, 2))
    sp.save_npz(tmp_path / "nan.npz", coo)
    with pytest.raises(DataFormatError, match="entry 2 .* non-finite"):
        read_ratings(tmp_path / "nan.npz")


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"userId": TABLE[0], "movieId": TABLE[1],
                             "rating": TABLE[2], "timestamp": TABLE[3]}),
                   tmp_path / "r.parquet")
    same(read_ratings(tmp_path / "r.parquet"), TABLE)


def test_parquet_without_pyarrow_says_what_to_install(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    write(tmp_path / "r.parquet", "x")
    with pytest.raises(DataFormatError, match=r"fastals\[parquet\]"):
        read_ratings(tmp_path / "r.parquet")


# ------------------------------------------------------------- to_csr
def test_to_csr_modes():
    r = Ratings(np.array([1, 3, 3]), np.array([2, 2, 4]), np.array([1.0, 2.0, 3.0]))
    csr, u, i = r.to_csr("observed")
    assert csr.toarray().tolist() == [[1, 0], [2, 3]]
    assert u.tolist() == [1, 3] and i.tolist() == [2, 4]
    csr, u, i = r.to_csr("range")
    assert u.tolist() == [1, 2, 3] and i.tolist() == [1, 2, 3, 4]
    assert csr.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 2, 0, 3]]
    assert r.to_csr("auto")[0].shape == (3, 4)  # 2 of 3 users, 2 of 4 items seen
    sparse_ids = Ratings(np.array([1, 1000]), np.array([1, 2]), np.ones(2))
    assert sparse_ids.to_csr("auto")[0].shape == (2, 2)
    strings = Ratings(np.array(["a", "b"]), np.array([1, 2]), np.ones(2))
    assert strings.to_csr("auto")[0].shape == (2, 2)
    with pytest.raises(InputError, match="non-negative integer user ids"):
        strings.to_csr("range")
    dup = Ratings(np.array([0, 0]), np.array([0, 0]), np.array([1.0, 2.0]))
    assert dup.to_csr("range", duplicates="mean")[0].toarray().tolist() == [[1.5]]


# ------------------------------------------------------------- properties
ids_int = st.integers(0, 10_000)
ids_str = st.text(alphabet="abcxyz_-0123456789", min_size=1, max_size=6)
ratings_values = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def tables(draw, ids=ids_int, unique_pairs=False, timestamps=True,
           vals=ratings_values):
    n = draw(st.integers(1, 12))
    users = draw(st.lists(ids, min_size=n, max_size=n))
    items = draw(st.lists(ids, min_size=n, max_size=n))
    if unique_pairs:
        seen = {}
        for u, i in zip(users, items):
            seen.setdefault((u, i), None)
        users, items = [p[0] for p in seen], [p[1] for p in seen]
        n = len(users)
    vals = draw(st.lists(vals, min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 2**40), min_size=n, max_size=n)) \
        if timestamps else None
    return Ratings(np.array(users), np.array(items), np.array(vals, np.float64),
                   None if ts is None else np.array(ts, np.int64))


TMP = tempfile.mkdtemp(prefix="fastals-test-data-")
atexit.register(shutil.rmtree, TMP, True)
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _text_roundtrip(table, name, sep, header):
    path = os.path.join(TMP, name)
    cols = [c for c in table if c is not None]
    rows = [sep.join(repr(v.item()) if isinstance(v, np.floating) else str(v)
                     for v in row) for row in zip(*cols)]
    Path(path).write_text("\n".join(([header] if header else []) + rows) + "\n")
    return read_ratings(path)


@SETTINGS
@given(tables())
def test_roundtrip_csv(table):
    same(_text_roundtrip(table, "r.csv", ",", "userId,movieId,rating,timestamp"),
         table)


@SETTINGS
@given(tables())
def test_roundtrip_tsv(table):
    same(_text_roundtrip(table, "u.data", "\t", None), table)


@SETTINGS
@given(tables())
def test_roundtrip_double_colon(table):
    same(_text_roundtrip(table, "ratings.dat", "::", None), table)


@SETTINGS
@given(tables(ids=ids_str, timestamps=False))
def test_roundtrip_string_ids_csv(table):
    # the header makes the column roles unambiguous for id strings like "12"
    # A column whose ids all look like integers is read as integers (so
    # "007" becomes 7); any other column keeps the strings exactly.
    got = _text_roundtrip(table, "s.csv", ",", "user,item,rating")
    assert got.values.tolist() == table.values.tolist()
    for read, written in ((got.user_ids, table.user_ids), (got.item_ids, table.item_ids)):
        if all(re.fullmatch(r"[-+]?\d+", x) for x in written):
            assert read.dtype == np.int64
            assert read.tolist() == [int(x) for x in written]
        else:
            assert read.dtype.kind == "U" and read.tolist() == written.tolist()


@SETTINGS
@given(tables(unique_pairs=True, timestamps=False))
def test_roundtrip_mtx(table):
    path = os.path.join(TMP, "r.mtx")
    shape = (int(table.user_ids.max()) + 1, int(table.item_ids.max()) + 1)
    scipy.io.mmwrite(path, sp.coo_matrix((table.values, (table.user_ids,
                                                         table.item_ids)), shape),
                    symmetry="general")
    got = read_ratings(path)
    same(_sorted(got), _sorted(table))


@SETTINGS
@given(tables(unique_pairs=True, timestamps=False))
def test_roundtrip_npz(table):
    path = os.path.join(TMP, "r.npz")
    shape = (int(table.user_ids.max()) + 1, int(table.item_ids.max()) + 1)
    sp.save_npz(path, sp.coo_matrix((table.values, (table.user_ids,
                                                    table.item_ids)), shape))
    same(_sorted(read_ratings(path)), _sorted(table))


@SETTINGS
@given(tables(vals=st.floats(-1e300, 1e300)),
       st.sampled_from([",", "\t", "::", " ", ";"]),
       st.sampled_from(["%d", "%.2f", "%r", "%.3e"]))
def test_fast_and_exact_parsers_agree(table, sep, fmt):
    path = os.path.join(TMP, "agree.txt")
    rows = [sep.join([str(u), str(i), fmt % v if fmt != "%r" else repr(float(v)),
                      str(t)]) for u, i, v, t in zip(*table)]
    Path(path).write_text("\n".join(rows) + "\n")
    fast = _read_text(path, engine="auto")
    exact = _read_text(path, engine="python")
    same(fast, exact)
    expected = [float(fmt % v) if fmt != "%r" else float(v) for v in table.values]
    assert fast.values.tolist() == expected


@SETTINGS
@given(tables(ids=st.one_of(ids_int, ids_str, st.sampled_from(
           ["é", "ü ber", "x\u00a0", "12345678901234567890", "-7", "+3", "0x1F"])),
              timestamps=False),
       st.sampled_from([",", "\t", "::", ";"]))
def test_fast_and_exact_parsers_agree_on_any_ids(table, sep):
    path = os.path.join(TMP, "ids.txt")
    rows = [sep.join([str(u), str(i), repr(float(v))]) for u, i, v, _ in
            zip(*table[:3], range(table.values.size))]
    Path(path).write_text("user,item,rating\n".replace(",", sep)
                          + "\n".join(rows) + "\n", encoding="utf-8")
    fast = _read_text(path, engine="auto")
    exact = _read_text(path, engine="python")
    same(fast, exact)


def _sorted(r):
    order = np.lexsort((r.values, r.item_ids, r.user_ids))
    return Ratings(r.user_ids[order], r.item_ids[order], r.values[order], None)


# ------------------------------------------------------------- named data sets
class _Server:
    """http.server on 127.0.0.1 in a thread, serving a dict of path -> bytes."""

    def __init__(self, files):
        outer = self
        self.files = files
        self.hits = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits += 1
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/ml/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def _zip_of(folder, files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(f"{folder}/{name}", text)
    return buf.getvalue()


@pytest.fixture
def no_data_env(monkeypatch, tmp_path):
    monkeypatch.delenv("FASTALS_DATA", raising=False)
    monkeypatch.delenv("FASTALS_BASE_URL", raising=False)
    monkeypatch.setenv("FASTALS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_named_set_found_under_fastals_data(monkeypatch, tmp_path, no_data_env):
    write_dir = tmp_path / "data" / "ml-1m"
    write_dir.mkdir(parents=True)
    write(write_dir / "ratings.dat", lines(TABLE, "::"))
    monkeypatch.setenv("FASTALS_DATA", str(tmp_path / "data"))
    same(load("ml-1m"), TABLE)


def test_download_checks_checksum_unpacks_and_caches(no_data_env, monkeypatch):
    body = _zip_of("ml-100k", {"u.data": lines(TABLE, "\t"), "README": "x"})
    sha = hashlib.sha256(body).hexdigest()
    with _Server({"/ml/ml-100k.zip": body}) as srv:
        path = fetch_movielens("ml-100k", base_url=srv.url, checksum=f"sha256:{sha}",
                               progress=False)
        assert path == no_data_env / "ml-100k" / "u.data"
        same(read_ratings(path), TABLE)
        # second call: from the cache, no request
        monkeypatch.setenv("FASTALS_BASE_URL", srv.url)
        same(load("ml-100k"), TABLE)
        assert srv.hits == 1
    assert sorted(os.listdir(no_data_env)) == ["ml-100k"]  # no temp left


def test_download_with_wrong_checksum_leaves_nothing(no_data_env):
    body = _zip_of("ml-1m", {"ratings.dat": lines(TABLE, "::")})
    with _Server({"/ml/ml-1m.zip": body}) as srv:
        with pytest.raises(DownloadError, match="sha256 checksum mismatch"):
            fetch_movielens("ml-1m", base_url=srv.url, checksum="sha256:" + "0" * 64,
                            progress=False)
        # the pinned GroupLens MD5 rejects this synthetic zip too
        with pytest.raises(DownloadError, match="md5 checksum mismatch"):
            fetch_movielens("ml-1m", base_url=srv.url, progress=False)
    assert os.listdir(no_data_env) == []


def test_download_404_and_offline_give_one_actionable_line(no_data_env):
    with _Server({}) as srv:
        with pytest.raises(DownloadError) as info:
            fetch_movielens("ml-20m", base_url=srv.url, progress=False)
    msg = str(info.value)
    assert "cannot download ml-20m" in msg and "Not Found" in msg
    assert "$FASTALS_DATA/ml-20m/" in msg and "\n" not in msg
    port = srv.httpd.server_address[1]  # closed now: connection refused
    with pytest.raises(DownloadError, match="check the network"):
        fetch_movielens("ml-20m", base_url=f"http://127.0.0.1:{port}/",
                        progress=False)
    with pytest.raises(DownloadError, match="not on disk"):
        fetch_movielens("ml-20m", download=False)
    assert os.listdir(no_data_env) == []


def test_zip_with_unsafe_paths_is_refused(no_data_env):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.txt", "x")
        zf.writestr("ml-100k/u.data", "1\t2\t3\t4\n")
    body = buf.getvalue()
    with _Server({"/ml/ml-100k.zip": body}) as srv:
        with pytest.raises(DownloadError, match="unsafe path"):
            fetch_movielens("ml-100k", base_url=srv.url, progress=False,
                            checksum="sha256:" + hashlib.sha256(body).hexdigest())
    assert not (no_data_env.parent / "evil.txt").exists()


def test_dataset_table_and_unknown_name():
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m",
                             "ml-latest-small"}
    with pytest.raises(InputError, match="unknown data set"):
        fetch_movielens("ml-7m")


def test_triplets_fit_directly(tmp_path):
    r = read_ratings(write(tmp_path / "u.data", lines(TABLE, "\t")))
    model = FastALS(factors=2, iterations=2, random_state=0).fit(r[:3])
    assert model.user_ids.tolist() == [1, 2, 3]
    assert model.item_ids.tolist() == [10, 20, 30, 40]
    assert math.isfinite(model.loss_history[-1])
