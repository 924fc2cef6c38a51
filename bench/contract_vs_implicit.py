"""The recommender contract of ``tests/recommender_contract.py`` on implicit itself.

``tests/test_compat_implicit.py`` checks fastals' drop-in
(:mod:`fastals.compat.implicit`) against the contract in the default test
run; this file runs the very same tests on
``implicit.cpu.als.AlternatingLeastSquares`` (0.7), which shows that the
contract describes implicit's behaviour and not only fastals'.  Skipped
without implicit (``pip install fastals[bench]``)::

    python -m pytest bench/contract_vs_implicit.py -q -p no:cacheprovider
"""

import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

implicit_als = pytest.importorskip("implicit.cpu.als")

from recommender_contract import RecommenderContract  # noqa: E402

warnings.filterwarnings("ignore", message=".*OpenBLAS is configured.*")


class TestImplicitItself(RecommenderContract):
    model_class = implicit_als.AlternatingLeastSquares
