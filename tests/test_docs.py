"""Every code block of the documentation runs (README.md and docs/*.md).

The Markdown is parsed by Sybil (https://sybil.readthedocs.io, in the
``test`` extra); each example is one test, ``page.md:LINE``:

* ```` ```python ```` blocks are executed, in page order, in one namespace
  per page (``>>>`` blocks are doctests and their output is compared);
* ```` ```console ```` blocks hold ``$ command`` lines, each followed by the
  output it prints. ``fastals ...`` (and ``python -m fastals ...``) runs in
  this process through Click's test runner, anything else in ``bash``. The
  exit status must be 0, or non-zero when the output shown is an
  ``Error: ...`` line, which must then match exactly. The output must
  match line by line with every number replaced by ``#`` (times and losses
  vary from machine to machine; words, columns and the number of lines do
  not); a line ``...`` stands for any number of lines;
* ```` ```bash ```` blocks are run as a script by ``bash -e``.

Blocks in other languages (``text``, ``mermaid``...) are not code. A
block that must not run (a real cluster address, a benchmark of hours) is
preceded by ``<!-- skip: next "reason" -->``. A block that mentions
MovieLens-100k (``ml-100k``, or the model ``ml100k.npz`` trained on it) is
skipped, with the reason, when the data is absent (see
``conftest.data_root``).

Each page runs in its own temporary folder: ``../shared/data`` there points
at the MovieLens data, and README.md, bench/, tools/ and docs/ at the
repository's, so that the commands run as written from the repository root
without writing into it. ``fastals`` and ``python`` on the ``PATH`` of
``bash`` blocks are this interpreter and this checkout's fastals.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import data_root

sybil = pytest.importorskip("sybil", reason="the docs' examples are run by Sybil: "
                            "pip install -e '.[test]'")
from sybil import Sybil  # noqa: E402
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
LINKED = ("README.md", "bench", "tools", "docs", "pyproject.toml")
TIMEOUT = 300
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:e[-+]?\d+)?")


def template(line):
    """A line with every number replaced by ``#`` and blanks collapsed (alignment varies)."""
    return " ".join(NUMBER.sub("#", line).split())


def compare_output(expected, actual, where):
    """Match ``actual`` against ``expected`` line by line, numbers aside."""
    want = [template(x) for x in expected if x.strip()]
    got = [template(x) for x in actual.splitlines() if x.strip()]
    pattern = "".join(".*?" if w == "..." else re.escape(w + "\n") for w in want)
    if not re.fullmatch(pattern, "".join(g + "\n" for g in got), re.S):
        raise AssertionError(
            f"{where}: the output differs from the page (numbers aside).\n"
            "--- page\n" + "\n".join(expected) + "\n--- actual\n" + actual)


def commands(source):
    """``[(command, [expected output lines])]`` of a console block."""
    out, cont = [], False
    for line in source.splitlines():
        if line.startswith("$ ") and not cont:
            out.append([line[2:], []])
        elif cont:
            out[-1][0] = out[-1][0][:-1] + " " + line.strip()
        elif out:
            out[-1][1].append(line)
        else:
            raise AssertionError(f"console block must start with '$ ': {line!r}")
        cont = line.endswith("\\")
    return out


def _shell_env(tmp):
    """PATH with ``python`` and ``fastals`` of this interpreter and checkout."""
    bin_dir = tmp / "_bin"
    if not bin_dir.exists():
        bin_dir.mkdir()
        for name, run in (("python", ""), ("python3", ""), ("fastals", " -m fastals")):
            script = bin_dir / name  # a script, not a link: a venv's python needs its path
            script.write_text(f'#!/bin/sh\nexec "{sys.executable}"{run} "$@"\n')
            script.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    return env


def run_shell(cmd):
    tmp = Path.cwd().parent
    return subprocess.run(["bash", "-e", "-c", cmd], capture_output=True, text=True,
                          env=_shell_env(tmp), timeout=TIMEOUT)


def run_fastals(args, env):
    from click.testing import CliRunner

    from fastals.cli import main

    result = CliRunner().invoke(main, args, env=env, prog_name="fastals",
                               catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def evaluate_console(example):
    where = f"{Path(example.path).name}:{example.line}"
    for cmd, expected in commands(example.parsed):
        words = shlex.split(cmd)
        env = {}
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if words[:1] == ["fastals"]:
            code, output = run_fastals(words[1:], env)
        elif words[:3] == ["python", "-m", "fastals"]:
            code, output = run_fastals(words[3:], env)
        else:
            done = run_shell(cmd)
            code, output = done.returncode, done.stdout + done.stderr
        errors = [x for x in expected if x.startswith("Error:")]
        if errors:
            assert code != 0, f"{where}: `{cmd}` succeeded, the page shows an error"
            assert errors[-1] in output.splitlines(), (
                f"{where}: `{cmd}` printed\n{output}\nthe page shows\n{errors[-1]}")
        else:
            assert code == 0, f"{where}: `{cmd}` exited with {code}:\n{output}"
            compare_output(expected, output, f"{where}: `{cmd}`")


def evaluate_bash(example):
    done = run_shell(example.parsed)
    assert done.returncode == 0, (
        f"{Path(example.path).name}:{example.line}: the block exited with "
        f"{done.returncode}:\n{done.stdout}{done.stderr}")


SYBIL = Sybil(parsers=[PythonCodeBlockParser(),
                       CodeBlockParser("console", evaluate_console),
                       CodeBlockParser("bash", evaluate_bash),
                       SkipParser()],
              path=str(ROOT), patterns=["*.md"])
DOCUMENTS = {page: SYBIL.parse(page) for page in PAGES}
EXAMPLES = [(page, ex) for page, doc in DOCUMENTS.items() for ex in doc]
IDS = [f"{page.name}:{ex.line}" for page, ex in EXAMPLES]


@pytest.fixture(scope="module")
def page_dirs(tmp_path_factory):
    """One working folder per page, laid out as the pages expect."""
    base = tmp_path_factory.mktemp("docs")
    made = {}

    def get(page):
        if page not in made:
            top = base / page.stem
            work = top / "fastals"
            work.mkdir(parents=True)
            (top / "shared").mkdir()
            (top / "shared" / "data").symlink_to(data_root().resolve())
            for name in LINKED:
                (work / name).symlink_to(ROOT / name)
            made[page] = work
        return made[page]
    return get


def _ml100k_present():
    return (data_root() / "ml-100k" / "ua.base").is_file()


@pytest.mark.parametrize("page,example", EXAMPLES, ids=IDS)
def test_docs_example(page, example, page_dirs, monkeypatch):
    text = example.document.text[example.region.start:example.region.end]
    if ("ml-100k" in text or "ml100k.npz" in text) and not _ml100k_present():
        def missing(example):
            pytest.skip(f"needs MovieLens-100k, not found at {data_root() / 'ml-100k'} "
                        "(set FASTALS_DATA to the folder that holds ml-100k/)")
        # Through the page's evaluators, so that a pending "skip: next" is
        # consumed by this block (and says its own reason), not the next one.
        example.document.evaluate(example, missing)
        return
    monkeypatch.chdir(page_dirs(page))
    example.namespace.setdefault("__name__", "__docs__")
    example.evaluate()


def test_every_block_is_code_or_declared():
    """A fence without a language would silently escape the checks."""
    bare = []
    for page in PAGES:
        fence = None
        for n, line in enumerate(page.read_text().splitlines(), 1):
            m = re.match(r"^\s*(```+)(.*)$", line)
            if not m:
                continue
            if fence is None:
                fence = m.group(1)
                if not m.group(2).strip():
                    bare.append(f"{page.name}:{n}")
            elif m.group(1) == fence and not m.group(2).strip():
                fence = None
    assert not bare, ("code blocks without a language (python, console, bash, "
                      "or text for output that is not code): " + ", ".join(bare))


def test_figure_script_without_movielens_or_implicit(tmp_path, capsys, monkeypatch):
    """Without the data the figures say so and use synthetic data; without
    implicit (or with --stored-speed) the speed figure uses stored timings."""
    pytest.importorskip("matplotlib", reason="the figures need matplotlib: "
                        "pip install -e '.[docs]'")
    import functools
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location(
        "make_figures", ROOT / "docs" / "figures" / "make_figures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "find_ml100k", lambda arg=None: None)
    monkeypatch.setattr(mod, "loss_figure",  # the real figure, smaller
                        functools.partial(mod.loss_figure, ks=(2, 5), epochs=5))
    mod.main(["loss", "speed", "--stored-speed", "-o", str(tmp_path)])
    out = capsys.readouterr().out
    assert "MovieLens-100k not found" in out and "synthetic data instead" in out
    assert "plotting the timings stored in docs/figures/speed_timings.json" in out
    assert "SVD bound" in out
    for name in ("loss_vs_epoch.png", "speed_vs_factors.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    stored = json.loads((ROOT / "docs" / "figures" / "speed_timings.json").read_text())
    assert {r["solver"] for r in stored["rows"]} == {"cg", "cholesky"}
