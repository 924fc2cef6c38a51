"""The module map of ``fastals`` and its import graph, generated from the code.

``python tools/architecture.py`` rewrites the generated part of
``docs/architecture.md`` (between the ``<!-- generated -->`` markers): one
row per module (its docstring's first sentence, its naive reference test,
its benchmark) and a Mermaid diagram of the imports between fastals
modules.  ``tests/test_layout.py`` checks that the committed file is
current, that there is no import cycle, that ``fastals/kernels/`` imports
nothing of fastals outside it, and that no module exceeds 800 lines.
"""

import ast
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "fastals")
DOC = os.path.join(ROOT, "docs", "architecture.md")
BEGIN, END = "<!-- generated: python tools/architecture.py -->", "<!-- end generated -->"
MAX_LINES = 800

#: Module -> (naive reference test, benchmark) as written in the map.
#: A module missing here gets "-": every kernel module must be listed
#: (tests/test_layout.py checks it).
REFERENCES = {
    "fastals.distributed": ("test_distributed.py (the single-machine FastALS, 1e-4 in float64)",
                            "distributed_speed.py"),
    "fastals._dask_tasks": ("test_distributed.py (the single-machine FastALS, 1e-4 in float64)",
                            "distributed_speed.py"),
    "fastals.kernels.rows": ("test_kernel_paths.py::test_cholesky_rows (np.linalg.solve per row); "
                             "test_short_rows.py (n x n path, naive.update_rows); "
                             "test_als.py (naive.update_rows)",
                             "bench_als.py; short_rows.py; regression_check.py "
                             "solve_cholesky, solve_cholesky_short"),
    "fastals.kernels.factor": ("test_kernel_paths.py::test_cholesky_rows (np.linalg.solve per row, "
                               "k < 64: own factorization); test_short_rows.py (n x n systems)",
                               "regression_check.py solve_cholesky, solve_cholesky_short"),
    "fastals.kernels.cg_push": ("test_cg_push.py (naive.cg_rows; the gather form; blocks "
                                "and threads)", "cg_parts.py --push; cg_halfsteps.py"),
    "fastals.kernels.cg": ("test_cg_blocks.py (naive.cg_rows); "
                           "test_kernel_paths.py::test_cg_converges_to_cholesky",
                           "bench_als.py (solver=cg); cg_halfsteps.py; "
                           "regression_check.py solve_cg, solve_cg_blocks"),
    "fastals.kernels.nnls": ("test_nnls.py (scipy.optimize.nnls)", "-"),
    "fastals.kernels.loss": ("test_kernel_paths.py::test_loss_terms_every_route; "
                             "test_als.py (naive.objective)", "bench_als.py (training loss)"),
    "fastals.kernels.dense": ("test_kernel_paths.py::test_gram_and_right_multiply; "
                              "test_defects.py (dense weighted regularization)",
                              "bench_als.py (objective=dense, weighted)"),
    "fastals.kernels.dense_fit": ("test_dense_step.py (naive.update_rows; DenseRun "
                                  "against half-steps); test_als.py dense objective "
                                  "(naive.update_rows)",
                                  "bench_als.py (objective=dense); dense_ml100k.py; "
                                  "dense_parts.py; regression_check.py dense_step"),
    "fastals.kernels.dense_tiles": ("test_dense_step.py::test_gemm_tiles_against_numpy "
                                    "(W @ M in float64; tilings bitwise); test_dense_step.py",
                                    "dense_parts.py --budget; dense_ml100k.py"),
    "fastals.kernels.gather": ("test_dense_step.py::test_gather_rows_against_scipy "
                               "(R @ Z, every tile width); test_dense_step.py",
                               "dense_parts.py --budget; dense_ml100k.py"),
    "fastals.kernels.sparse": ("test_transpose.py (SciPy's transpose)", "setup_time.py"),
    "fastals.kernels.topk": ("test_kernel_paths.py::test_topk_blocks_against_sort; "
                             "test_evaluation.py (naive_metrics.auc)",
                             "bench_recommend.py; regression_check.py topk"),
    "fastals.kernels._cache": ("test_cache_staleness.py (an edited helper module recompiles the "
                               "kernels that inline it)", "-"),
    "fastals.kernels.chunks": ("test_kernel_paths.py::test_bitwise_identical_across_threads", "-"),
    "fastals.kernels.blas": ("test_kernel_paths.py (every kernel with blas on and off)",
                             "compile_time.py"),
    "fastals.kernels.openblas": ("test_openblas.py (the caller's count after fits and "
                                 "recommend, nested and concurrent holds)", "-"),
    "fastals.kernels.llvm": ("test_kernel_paths.py::test_every_chunk_solved_once_on_all_threads",
                             "compile_time.py"),
    "fastals.kernels.gibbs": ("test_bayes.py (exact Gaussian conditionals, numpy residuals)",
                              "bayes_vs_myfm.py"),
    "fastals.kernels.tiles": ("test_tiles.py (numpy Gram and Cholesky; row solves against "
                              "naive.update_rows)",
                              "chol_parts.py; cg_ab.py --solver cholesky; bench_vs_implicit.py"),
    "fastals.kernels.lanes": ("test_bayes_lanes.py (numpy Cholesky, solves, libm Box-Muller)",
                              "bayes_vs_myfm.py"),
    "fastals.kernels": ("test_kernel_paths.py", "regression_check.py"),
    "fastals.model": ("test_als.py (naive.py); test_properties.py", "bench_als.py; bench_vs_implicit.py"),
    "fastals.bayes": ("test_bayes.py (conjugate posteriors)", "bayes_vs_myfm.py"),
    "fastals.kernels.gibbs_implicit": ("test_bayes_implicit.py (numpy conditionals, exact "
                                       "conditional and joint Gaussians)",
                                       "bayes_implicit_cost.py"),
    "fastals._bayes_implicit": ("test_bayes_implicit.py (determinism, ML-100k gain)",
                                "bayes_implicit_cost.py"),
    "fastals.recommend": ("test_recommend.py (naive_metrics.topk_by_sort, naive.update_rows)",
                          "bench_recommend.py"),
    "fastals.evaluation": ("test_evaluation.py (naive_metrics.py)", "accuracy.py"),
    "fastals.persist": ("test_persist.py", "-"),
    "fastals.cli": ("test_cli.py", "-"),
    "fastals._input": ("test_validation.py; test_inputs.py; test_properties_contracts.py (duplicates on every path)", "-"),
    "fastals._dense": ("test_dense_step.py; test_als.py dense objective (naive.update_rows)",
                       "dense_ml100k.py"),
    "fastals._dense_wr": ("test_defects.py::test_dense_objective_honours_weighted_regularization (naive.update_rows)", "-"),
    "fastals._guard": ("test_defects.py (divergence on ML-100k, rises, solver_report)", "-"),
    "fastals._side": ("test_cg_push.py::test_fit_push_equals_gather; test_cg_blocks.py", "-"),
    "fastals._splice": ("test_properties_contracts.py; test_defects.py (partial fit)", "-"),
    "fastals._cli_params": ("test_inputs.py::test_cli_options_are_fastals_parameters_with_its_defaults", "-"),
    "fastals._progress": ("test_inputs.py::test_plain_progress_bar_without_tqdm", "-"),
    "fastals.data": ("test_data.py", "-"),
    "fastals.data.parse": ("test_data.py::test_fast_and_exact_parsers_agree (the exact Python parser)", "-"),
    "fastals.data.text": ("test_data.py (np.loadtxt on ml-100k; round trips)", "-"),
    "fastals.data.formats": ("test_data.py; test_inputs.py::test_compressed_inputs", "-"),
    "fastals.data.columns": ("test_inputs.py; test_input_properties.py", "-"),
    "fastals.data.tables": ("test_inputs.py; test_input_properties.py", "-"),
    "fastals.data.ratings": ("test_data.py::test_to_csr_modes", "-"),
    "fastals.data.movielens": ("test_data.py (local HTTP server)", "-"),
    "fastals.data.synthetic": ("test_synthetic.py", "-"),
}


def modules():
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for folder, _, files in os.walk(PACKAGE):
        if "__pycache__" in folder:
            continue
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = path
    return dict(sorted(out.items()))


def imports(name, path, known):
    """fastals modules that module ``name`` imports (anywhere in its code,
    function-level imports included)."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    is_pkg = path.endswith("__init__.py")
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                mod = ".".join(base[:len(base) - node.level + 1]
                               + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from . import x" / "from .kernels import nnls": x may be a module
            targets = [mod + "." + a.name if mod + "." + a.name in known else mod
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def graph():
    mods = modules()
    return {m: sorted(imports(m, p, mods)) for m, p in mods.items()}


def cycles(g):
    """Every cycle, as a list of modules (empty: none).  A package's
    ``__init__`` importing its own submodules is not a cycle unless a
    submodule imports the package back."""
    out, state = [], {}

    def visit(m, stack):
        state[m] = 1
        stack.append(m)
        for n in g.get(m, ()):
            if state.get(n) == 1:
                out.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack)
        stack.pop()
        state[m] = 2

    for m in g:
        if m not in state:
            visit(m, [])
    return out


def line_counts():
    return {m: sum(1 for _ in open(p, encoding="utf-8")) for m, p in modules().items()}


def summary(path):
    doc = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read())) or ""
    text = " ".join(doc.split("\n\n")[0].split())
    m = re.match(r"(.+?(?<! al)\.)(\s|$)", text)
    text = m.group(1) if m else text
    text = re.sub(r":(?:func|mod|class|meth|data):`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`") or "-"


def generated():
    mods = modules()
    g = graph()
    lines = ["| module | what it does | naive reference test | benchmark |",
             "|---|---|---|---|"]
    for m, p in mods.items():
        test, bench = REFERENCES.get(m, ("-", "-"))
        lines.append(f"| `{m}` | {summary(p).replace('|', '/')} "
                     f"| {test} | {bench} |")
    lines.insert(0, "Tests are in `tests/`, benchmarks in `bench/`.\n")
    lines += ["", "Imports between fastals modules (an arrow points to the module "
              "imported):", "", "```mermaid", "graph LR"]
    for m in mods:
        for n in g[m]:
            lines.append(f"    {_node(m)} --> {_node(n)}")
    lines.append("```")
    return "\n".join(lines)


def _node(m):
    short = m.replace("fastals.", "")
    return f'{m.replace(".", "_")}["{short}"]'


def render(text):
    """``text`` (the document) with its generated part brought up to date."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{generated()}\n{END}{tail}"


def main():
    text = open(DOC, encoding="utf-8").read()
    new = render(text)
    if new != text:
        with open(DOC, "w", encoding="utf-8") as f:
            f.write(new)
        print(f"updated {DOC}")
    else:
        print(f"{DOC} is current")


if __name__ == "__main__":
    sys.exit(main())
