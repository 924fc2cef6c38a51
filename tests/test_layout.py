"""Package layout: no import cycle, kernels self-contained, short modules,
and docs/architecture.md generated from the current code."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tools"))
import architecture as arch  # noqa: E402


def test_no_import_cycle():
    assert arch.cycles(arch.graph()) == []


def test_cycle_detection_sees_function_level_imports():
    g = arch.graph()
    g["fastals.persist"] = g["fastals.persist"] + ["fastals.model"]  # the old cycle
    assert arch.cycles(g)


def test_kernels_import_nothing_of_fastals_outside_kernels():
    outside = {m: [n for n in deps if not n.startswith("fastals.kernels")]
               for m, deps in arch.graph().items() if m.startswith("fastals.kernels")}
    assert {m: d for m, d in outside.items() if d} == {}


def test_no_module_over_800_lines():
    long = {m: n for m, n in arch.line_counts().items() if n > arch.MAX_LINES}
    assert long == {}


def test_every_kernel_module_has_its_references_in_the_map():
    kernels = [m for m in arch.modules() if m.startswith("fastals.kernels")]
    assert [m for m in kernels if m not in arch.REFERENCES] == []


def test_architecture_doc_is_current():
    text = open(arch.DOC, encoding="utf-8").read()
    assert arch.render(text) == text, "run: python tools/architecture.py"
