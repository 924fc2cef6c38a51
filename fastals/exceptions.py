"""Exceptions raised by fastals.

All of them derive from :class:`FastALSError`; the ones caused by bad input
also derive from :class:`ValueError`, so ``except ValueError`` keeps
working for code written against numpy or scikit-learn conventions.
"""


class FastALSError(Exception):
    """Base class of every error raised by fastals."""


class InputError(FastALSError, ValueError):
    """Input data or a hyperparameter is invalid (names the problem)."""


class DataFormatError(InputError):
    """A ratings file cannot be parsed (names the file and, where known, the line)."""


class ModelFileError(FastALSError, ValueError):
    """A model file is damaged, truncated, foreign or from a newer version."""


class NotFittedError(FastALSError, AttributeError):
    """The model is used before :meth:`FastALS.fit`."""


class NumericalError(FastALSError, ArithmeticError):
    """Training diverged: a factor became NaN or infinite."""


class DataWarning(UserWarning):
    """The data were read, but something about them looks wrong (names what and the fix)."""
