"""fastals: fast alternating least squares for sparse rating matrices.

>>> from fastals import FastALS
>>> model = FastALS(factors=32, objective="explicit").fit(ratings)   # doctest: +SKIP
"""

from .exceptions import (DataFormatError, FastALSError, InputError,
                         ModelFileError, NotFittedError, NumericalError)
from .model import FastALS
from .bayes import BayesianALS

from ._version import __version__  # noqa: E402

from .data import Ratings, load as load_ratings  # noqa: E402
from .model import load_model, save_model  # noqa: E402
from .data.synthetic import make_ratings  # noqa: E402

__all__ = ["FastALS", "BayesianALS", "FastALSError", "InputError", "DataFormatError",
           "ModelFileError", "NotFittedError", "NumericalError", "__version__",
           "Ratings", "load_ratings", "make_ratings", "load_model", "save_model"]
