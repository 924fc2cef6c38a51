"""Tests of the fastals command line (CliRunner and real subprocesses)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fastals import FastALS
from fastals.cli import main
from fastals.data.synthetic import make_ratings

LINE = re.compile(r"^Iteration: (\d+), loss = (\d+\.\d{6}), time : (\d+\.\d{4})")


def run(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    assert "Traceback" not in result.output
    return result


def iterations(stdout):
    return [tuple(float(x) for x in LINE.match(l).groups())
            for l in stdout.splitlines() if LINE.match(l)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small synthetic train / test pair written as MovieLens-style TSV."""
    d = tmp_path_factory.mktemp("cli")
    r = make_ratings(200, 150, 6000, seed=4)
    users, items = r.user_ids + 1, r.item_ids + 1  # MovieLens ids start at 1
    test = np.random.default_rng(0).random(r.values.size) < 0.1
    for name, mask in (("train.tsv", ~test), ("test.tsv", test)):
        rows = zip(users[mask], items[mask], r.values[mask].astype(int))
        (d / name).write_text("".join(f"{u}\t{i}\t{v}\t0\n" for u, i, v in rows))
    return d


# ------------------------------------------------------------------ train
def test_plain_train_is_synthetic_and_prints_the_original_lines():
    res = run("train", "--epochs", 12)
    assert res.exit_code == 0, res.output
    first = res.stdout.splitlines()[0]
    assert "synthetic" in first and "943 users x 1682 items" in first
    its = iterations(res.stdout)
    assert [int(e) for e, _, _ in its] == [1, 11, 12]
    assert its[-1][1] < its[0][1]  # the loss falls
    assert [t for _, _, t in its] == sorted(t for _, _, t in its)  # cumulative
    assert res.stdout.splitlines()[-1].startswith("Trained 12 epochs")
    assert res.stderr == ""


def test_original_option_names_are_aliases():
    a = run("train", "--epochs", 4, "--factor", 3, "--lambda_param", 0.05,
            "--json", "--log-every", 1)
    b = run("train", "--iterations", 4, "--factors", 3, "--regularization", 0.05,
            "--json", "--log-every", 1)
    assert a.exit_code == b.exit_code == 0
    ra = [json.loads(l) for l in a.stdout.splitlines()]  # stdout: JSON only
    rb = [json.loads(l) for l in b.stdout.splitlines()]
    assert [r["epoch"] for r in ra] == [1, 2, 3, 4]
    assert [r["loss"] for r in ra] == [r["loss"] for r in rb]
    assert "synthetic" in a.stderr  # messages moved to stderr


def test_quiet_and_no_epoch_lines():
    res = run("train", "--epochs", 2, "--quiet")
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == ""
    res = run("train", "--epochs", 2, "--log-every", 0)
    assert res.exit_code == 0 and not iterations(res.stdout)


def test_fit_warnings_are_one_line(monkeypatch):
    # A solver warning raised during the fit (here: row systems reported as
    # not positive definite) prints as one "Warning: ..." line, no source.
    from fastals import kernels as K
    real = K.solve_cholesky

    def failing(*args):
        real(*args)
        return 1
    monkeypatch.setattr(K, "solve_cholesky", failing)
    res = run("train", "--epochs", 1, "--quiet")
    assert res.exit_code == 0
    lines = res.stderr.splitlines()
    assert lines and all(l.startswith("Warning: ") for l in lines)
    assert "not positive definite" in lines[0]


def test_seed_changes_the_synthetic_data_and_the_result():
    a = iterations(run("train", "--epochs", 1, "--seed", 1).stdout)
    b = iterations(run("train", "--epochs", 1, "--seed", 1).stdout)
    c = iterations(run("train", "--epochs", 1, "--seed", 2).stdout)
    assert a[0][1] == b[0][1] != c[0][1]


def test_train_test_save_and_query(files, tmp_path):
    model_path = tmp_path / "m.npz"
    res = run("train", "--data", files / "train.tsv", "--test", files / "test.tsv",
              "--factors", 8, "--epochs", 6, "--regularization", 0.1,
              "--use-bias", "--weighted-regularization", "-o", model_path)
    assert res.exit_code == 0, res.output
    assert "Loaded" in res.stdout.splitlines()[0]
    assert all("test rmse = " in l for l in res.stdout.splitlines() if LINE.match(l))
    rmse = float(re.search(r"Test RMSE: (\d+\.\d+) on", res.stdout).group(1))
    model = FastALS.load(model_path)
    assert model.use_bias and model.factors == 8 and len(model.loss_history) == 6
    assert 0.3 < rmse < 1.2
    assert os.listdir(tmp_path) == ["m.npz"]

    res = run("evaluate", model_path, "--data", files / "test.tsv", "--json")
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["rmse"] == pytest.approx(rmse, abs=1e-6)
    assert 0 <= ev["precision@10"] <= 1 and ev["n"] > 0
    assert "rmse" in run("evaluate", model_path, "--data", files / "test.tsv").stdout

    user = int(model.user_ids[0])
    res = run("recommend", model_path, "--user", user, "-n", 5)
    assert res.exit_code == 0, res.output
    rows = [l.split("\t") for l in res.stdout.splitlines()[1:]]
    ids, scores = model.recommend(user, n=5)
    assert [int(r[1]) for r in rows] == ids.tolist()
    assert [float(r[2]) for r in rows] == pytest.approx(scores.tolist(), abs=1e-6)

    item = int(model.item_ids[3])
    res = run("similar", model_path, "--item", item, "-n", 3, "--json")
    got = json.loads(res.stdout)
    assert [r["item"] for r in got["results"]] == model.similar_items(item, n=3)[0].tolist()

    res = run("info", model_path, "--json")
    info = json.loads(res.stdout)
    assert info["factors"] == 8 and info["epochs"] == 6
    assert info["users"] == model.user_factors.shape[0]
    assert "objective=explicit" in run("info", model_path).stdout


def test_string_ids_in_and_out(tmp_path):
    data = tmp_path / "r.csv"
    rows = [f"user {u},item-{i},{1 + (u * i) % 5}" for u in range(30) for i in range(20)
            if (u + i) % 3]
    data.write_text("who,what,stars\n" + "\n".join(rows) + "\n")
    out = tmp_path / "m.npz"
    # 'who' and 'what' name no known column: refused, saying how to name them
    res = run("train", "--data", data, "--epochs", 2, "--factors", 3, "-o", out)
    assert res.exit_code == 1 and "--columns" in res.stderr and not out.exists()
    res = run("train", "--data", data, "--epochs", 2, "--factors", 3,
              "--columns", "who,what,stars", "-o", out)
    assert res.exit_code == 0, res.output
    assert "columns user=who, item=what, rating=stars (as given)" in res.stdout
    res = run("recommend", out, "--user", "user 4", "-n", 3, "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["user"] == "user 4" and len(got["results"]) == 3
    rated = {r.split(",")[1] for r in rows if r.startswith("user 4,")}
    assert all(r["item"].startswith("item-") and r["item"] not in rated
               for r in got["results"])
    res = run("recommend", out, "--user", "user 99")
    assert res.exit_code == 1 and "unknown user id 'user 99'" in res.stderr


def test_implicit_with_test_prints_ranking_metrics(files):
    res = run("train", "--objective", "implicit", "--data", files / "train.tsv",
              "--test", files / "test.tsv", "--factors", 4, "--epochs", 2)
    assert res.exit_code == 0, res.output
    assert re.search(r"precision@10 0\.\d{4}", res.stdout)


def test_named_dataset_from_fastals_data(tmp_path, files):
    (tmp_path / "ml-100k").mkdir()
    shutil.copy(files / "train.tsv", tmp_path / "ml-100k" / "u.data")
    res = run("train", "--data", "ml-100k", "--epochs", 1,
              env={"FASTALS_DATA": str(tmp_path)})
    assert res.exit_code == 0, res.output
    assert "ml-100k" in res.stdout.splitlines()[0]


# ------------------------------------------------------------------ errors
def _bad(tmp_path, name, content):
    p = tmp_path / name
    p.write_bytes(content.encode() if isinstance(content, str) else content)
    return p


BAD_DATA = [
    ("missing", None, "no such file"),
    ("ratings.xlsx", "1,2,3\n", "unknown format"),
    ("letters.csv", "1,2,3\n1,3,abc\n", "line 2: rating 'abc' is not a number"),
    ("nan.tsv", "1\t2\tnan\t0\n", "line 1: rating 'nan' is not a finite"),
    ("inf.dat", "1::2::4::0\n2::2::inf::0\n", "line 2: rating 'inf' is not a finite"),
    ("empty.csv", "", "empty file"),
    ("cut.tsv", "1\t2\t3\t0\n2\t5\t4\t0\n3\t7", "line 3 has 2 field(s)"),
]


@pytest.mark.parametrize("name,content,message", BAD_DATA)
def test_bad_data_gives_one_line_and_no_output_file(tmp_path, name, content, message):
    path = tmp_path / name if content is None else _bad(tmp_path, name, content)
    out = tmp_path / "model.npz"
    res = run("train", "--data", path, "--epochs", 1, "-o", out)
    assert res.exit_code == 1
    assert isinstance(res.exception, SystemExit)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == sorted({p.name for p in tmp_path.iterdir()
                                                   if p.name != "model.npz"})


@pytest.mark.parametrize("args,code,message", [
    (["--factors", 0], 2, "Invalid value for '--factors'"),
    (["--objective", "svd"], 2, "'svd' is not one of"),
    (["--regularization", -1], 2, "Invalid value for '--regularization'"),
    (["--epochs", "ten"], 2, "'ten' is not a valid integer"),
    (["--objective", "dense", "--use-bias"], 1, "use_bias=True needs objective"),
    (["--objective", "dense", "--solver", "cg"], 1, "solver='cg'"),
    (["--no-such-option"], 2, "No such option"),
    (["--burn-in", 3], 2, "--burn-in applies to --model bayes only"),
    (["--no-implicit-feedback"], 2, "--no-implicit-feedback applies to --model bayes"),
])
def test_bad_hyperparameters(tmp_path, args, code, message):
    out = tmp_path / "m.npz"
    res = run("train", "--epochs", 1, "-o", out, *args)
    assert res.exit_code == code
    assert res.stdout == ""  # refused before any data is generated or read
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]
    assert not out.exists() and os.listdir(tmp_path) == []


def test_format_option_overrides_the_extension(tmp_path, files):
    data = tmp_path / "ratings.xlsx"
    shutil.copy(files / "train.tsv", data)
    assert run("train", "--data", data, "--epochs", 1).exit_code == 1
    res = run("train", "--data", data, "--format", "text", "--epochs", 1)
    assert res.exit_code == 0, res.output


def test_output_folder_must_exist(tmp_path):
    res = run("train", "--epochs", 1, "-o", tmp_path / "nope" / "m.npz")
    assert res.exit_code == 2 and "does not exist" in res.stderr
    assert len(res.stderr.splitlines()) == 1


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, files):
    path = tmp_path_factory.mktemp("model") / "m.npz"
    res = run("train", "--data", files / "train.tsv", "--epochs", 2, "--factors", 4,
              "-o", path)
    assert res.exit_code == 0, res.output
    return path


@pytest.mark.parametrize("args,message", [
    (["recommend", "{model}", "--user", "99999"], "unknown user id 99999"),
    (["recommend", "{model}", "--user", "alice"], "unknown user id 'alice'"),
    (["similar", "{model}", "--item", "-5"], "unknown item id -5"),
    (["recommend", "{damaged}", "--user", "1"], "damaged"),
    (["info", "{truncated}"], "not a valid zip"),
    (["info", "{empty}"], "empty file"),
    (["info", "{missing}"], "cannot read the model file"),
    (["evaluate", "{model}", "--data", "{missing}"], "no such file"),
])
def test_bad_queries(tmp_path, model_file, args, message):
    blob = model_file.read_bytes()
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 0xFF
    paths = {"model": model_file, "damaged": _bad(tmp_path, "d.npz", bytes(damaged)),
             "truncated": _bad(tmp_path, "t.npz", blob[: len(blob) // 3]),
             "empty": _bad(tmp_path, "e.npz", b""), "missing": tmp_path / "none.npz"}
    res = run(*[a.format(**paths) for a in args])
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


def test_offline_named_dataset_says_what_to_do(tmp_path):
    res = run("train", "--data", "ml-1m",
              env={"FASTALS_DATA": str(tmp_path), "FASTALS_CACHE": str(tmp_path / "c"),
                   "FASTALS_BASE_URL": "http://127.0.0.1:9/"})
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and "cannot download ml-1m" in lines[0]
    assert "FASTALS_DATA" in lines[0]
    assert not (tmp_path / "c" / "ml-1m").exists()


def test_help_everywhere_and_version():
    for cmd in ([], ["train"], ["evaluate"], ["recommend"], ["similar"], ["info"]):
        res = run(*cmd, "--help")
        assert res.exit_code == 0 and "Usage:" in res.stdout
    assert "--lambda_param" in run("train", "--help").stdout
    res = run("--version")
    assert res.exit_code == 0 and re.match(r"fastals, version \d", res.stdout)
    res = run()
    assert res.exit_code == 0 and "Commands:" in res.stdout


# ------------------------------------------------------------------ MovieLens
def test_original_script_reproduction_on_ml100k(ml100k):
    res = run("train", "--objective", "dense", "--data", ml100k / "ua.base",
              "--epochs", 100, "--factor", 2, "--lambda_param", 0.01)
    assert res.exit_code == 0, res.output
    its = iterations(res.stdout)
    assert [int(e) for e, _, _ in its] == [1, 11, 21, 31, 41, 51, 61, 71, 81, 91, 100]
    last = LINE.match([l for l in res.stdout.splitlines() if LINE.match(l)][-1])
    assert last.group(2).startswith("0.5206"), res.stdout


def test_explicit_ml100k_beats_the_mean(ml100k):
    res = run("train", "--data", ml100k / "ua.base", "--test", ml100k / "ua.test",
              "--factors", 10, "--epochs", 10, "--regularization", 0.1,
              "--use-bias", "--weighted-regularization", "--log-every", 0)
    assert res.exit_code == 0, res.output
    rmse = float(re.search(r"Test RMSE: (\d+\.\d+) on 9,430 ratings", res.stdout).group(1))
    assert rmse < 1.0  # predicting the mean rating gives about 1.15


# ------------------------------------------------------------------ processes
def _script():
    for cand in (Path(sys.executable).parent / "fastals", shutil.which("fastals")):
        if cand and Path(cand).is_file():
            return str(cand)
    pytest.skip("the fastals console script is not installed (pip install -e .)")


def test_installed_console_script_and_module(tmp_path):
    out = tmp_path / "m.npz"
    p = subprocess.run([_script(), "train", "--epochs", "3", "-o", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "synthetic" in p.stdout.splitlines()[0]
    assert len(iterations(p.stdout)) == 2 and out.is_file()
    p = subprocess.run([_script(), "info", str(tmp_path / "missing.npz")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1 and p.stderr.count("\n") == 1
    assert p.stderr.startswith("Error: ") and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "fastals", "--version"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "fastals, version" in p.stdout


@pytest.mark.parametrize("save", [True, False])
def test_ctrl_c_saves_the_last_finished_epoch(tmp_path, save):
    out = tmp_path / "m.npz"
    cmd = [_script(), "train", "--epochs", 100000, "--factors", 32, "--log-every", 1]
    if save:
        cmd += ["-o", out]
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = p.stdout.readline()
            assert line, "training ended before the signal"
            if LINE.match(line):
                seen.append(line)
                break
        assert seen, "no epoch line"
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = iterations(seen[0] + stdout)[-1]
    n = int(last[0])
    if save:
        assert f"Interrupted after epoch {n}; saved the model of epoch {n}" in stderr
        model = FastALS.load(out)
        assert len(model.loss_history) == n
        assert f"{model.loss_history[-1]:.6f}" == f"{last[1]:.6f}"
        assert os.listdir(tmp_path) == ["m.npz"]  # no temp file left
    else:
        assert "nothing saved" in stderr and os.listdir(tmp_path) == []
