"""Hyperparameter handling shared by the estimators (scikit-learn style)."""

import numpy as np

from .exceptions import InputError


class ParamsMixin:
    """``get_params``/``set_params`` and a ``repr`` that shows what differs
    from the defaults, for a class that lists its hyperparameters in
    ``_PARAMS`` and can be built with no arguments."""

    _PARAMS = ()

    def get_params(self, deep=True):
        """Hyperparameters as a dict (scikit-learn convention)."""
        return {p: getattr(self, p) for p in self._PARAMS}

    def set_params(self, **params):
        """Set hyperparameters (all or nothing); returns ``self``."""
        for key in params:
            if key not in self._PARAMS:
                raise InputError(f"unknown parameter {key!r}; valid: "
                                 + ", ".join(self._PARAMS))
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def __repr__(self):
        defaults = type(self)().get_params()
        parts = []
        for key, value in self.get_params().items():
            if _differs(value, defaults[key]):
                shown = np.dtype(value).name if key == "dtype" else repr(value)
                parts.append(f"{key}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"


def _differs(a, b):
    if a is None or b is None:
        return a is not b
    try:
        if a is np.float32 or b is np.float32 or isinstance(a, (type, np.dtype)):
            return np.dtype(a) != np.dtype(b)
    except TypeError:
        pass
    try:
        return bool(a != b)
    except Exception:
        return True


def float_dtype(value):
    """The ``np.dtype`` of a ``dtype`` hyperparameter; InputError unless it
    is float32 or float64."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise InputError(f"dtype must be float32 or float64, got {value!r}") from None
    if dtype not in (np.float32, np.float64):
        raise InputError(f"dtype must be float32 or float64, got {dtype.name}")
    return dtype
