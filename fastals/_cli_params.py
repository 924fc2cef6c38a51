"""Command-line options generated from :class:`FastALS`'s own parameters.

Every parameter of ``FastALS.__init__`` (except ``callback``) becomes an
option of ``fastals train`` with the same default (read from the signature
with :mod:`inspect`), the same choices (the model module's constants) and
the help text of the class docstring, so the command line and Python can
never disagree or drift: a parameter added to ``FastALS`` appears here by
itself.  Only the spelling is chosen here (``--seed`` for
``random_state``, ``--threads`` for ``num_threads``, and the names of the
original ``train.py`` as aliases).
"""

import inspect
import re

import click
import numpy as np

from . import model as _model
from ._input import DUPLICATE_POLICIES
from .model import FastALS

#: Parameters with no command-line form.
EXCLUDED = ("callback",)

#: Option names where they are not ``--the-parameter-name``; later names are
#: aliases (the first ones are those of the original ``train.py``).
NAMES = {
    "factors": ("--factors", "--factor"),
    "iterations": ("--iterations", "--epochs"),
    "regularization": ("--regularization", "--lambda_param", "--lambda"),
    "random_state": ("--seed", "--random-state"),
    "num_threads": ("--threads", "--num-threads"),
}
#: Boolean flags whose "off" spelling is not ``--no-<name>``.
FLAGS = {
    "use_bias": "--use-bias/--no-bias",
    "weighted_regularization": "--weighted-regularization/--plain-regularization",
}
#: Allowed values of the string parameters, from the model's own constants.
CHOICES = {
    "objective": _model.OBJECTIVES,
    "confidence": _model.CONFIDENCES,
    "solver": _model.SOLVERS,
    "duplicates": DUPLICATE_POLICIES,
    "dtype": ("float32", "float64"),
}


class _Literal(click.ParamType):
    """A number, or ``none`` (for parameters whose default is None)."""

    name = "NUMBER|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, (int, float)):
            return value
        text = str(value).strip()
        if text.lower() in ("none", "null", ""):
            return None
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        self.fail(f"{value!r} is not a number or 'none'", param, ctx)


class _Seed(click.ParamType):
    """An integer seed, or ``none`` for a fresh one each run."""

    name = "INTEGER|none"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, int):
            return value
        if str(value).strip().lower() == "none":
            return None
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not an integer or 'none'", param, ctx)


def parameters():
    """``[(name, default)]`` of ``FastALS.__init__``, in order."""
    sig = inspect.signature(FastALS.__init__)
    return [(p.name, p.default) for p in sig.parameters.values()
            if p.name != "self" and p.name not in EXCLUDED
            and p.kind is p.POSITIONAL_OR_KEYWORD]


def docstring_help():
    """``{parameter: first paragraph of its description}`` from the class
    docstring (numpydoc ``Parameters`` section)."""
    doc = inspect.getdoc(FastALS) or ""
    m = re.search(r"\nParameters\n-+\n(.*?)(\n\S[^\n]*\n-+\n|\Z)", doc, re.S)
    out = {}
    if not m:
        return out
    name = None
    for line in m.group(1).splitlines():
        head = re.match(r"^(\w+(?:, \w+)*) :", line)
        if head:
            names = head.group(1).split(", ")
            for n in names:
                out[n] = []
            name = names
        elif name is not None:
            for n in name:
                out[n].append(line.strip())
    result = {}
    for n, lines in out.items():
        para = re.split(r"\s*\n\s*\n", "\n".join(lines).strip())[0]
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", " ".join(para.split()))
        result[n] = text.replace("``", "")
    return result


def cli_names(name):
    """Option names of parameter ``name``."""
    return NAMES.get(name, ("--" + name.replace("_", "-"),))


def _objective_defaults(name):
    """``{objective: default}`` of a parameter whose default (None) depends
    on the objective, or None for the others."""
    if name not in getattr(_model, "AUTO_PARAMS", ()):
        return None
    return {obj: getattr(FastALS(objective=obj), name) for obj in _model.OBJECTIVES}


def _option(name, default, helps):
    help_text = helps.get(name, "")
    by_objective = _objective_defaults(name) if default is None else None
    shown = True
    if by_objective:
        # None: the objective's default; the option takes that type.
        default_of = by_objective["explicit"]
        shown = "the objective's: " + ", ".join(
            f"{obj} {v if not isinstance(v, float) else f'{v:g}'}"
            for obj, v in by_objective.items())
    else:
        default_of = default
    if name in FLAGS or isinstance(default_of, (bool, np.bool_)):
        decl = FLAGS.get(name, f"--{name.replace('_', '-')}/"
                               f"--no-{name.replace('_', '-')}")
        return click.option(decl, name, default=None if default is None
                            else bool(default), show_default=shown, help=help_text)
    if by_objective:
        kind = click.INT if isinstance(default_of, (int, np.integer)) else click.FLOAT
        return click.option(*cli_names(name), name, type=kind, default=None,
                            show_default=shown, help=help_text)
    if name == "random_state":
        return click.option(*cli_names(name), name, type=_Seed(), default=default,
                            show_default=True, help=help_text)
    if name in CHOICES:
        shown = default
        if name == "dtype":
            shown = np.dtype(default).name
        return click.option(*cli_names(name), name, type=click.Choice(CHOICES[name]),
                            default=shown, show_default=True, help=help_text)
    if isinstance(default, (int, np.integer)):
        kind = click.INT
    elif isinstance(default, (float, np.floating)):
        kind = click.FLOAT
    elif isinstance(default, str):
        kind = click.STRING
    else:
        kind = _Literal()
    return click.option(*cli_names(name), name, type=kind, default=default,
                        show_default=True, help=help_text)


def model_options(f):
    """Decorator: one option per ``FastALS`` parameter."""
    helps = docstring_help()
    for name, default in reversed(parameters()):
        f = _option(name, default, helps)(f)
    return f


def pop_model_params(kwargs):
    """Take the model's parameters out of a command's ``kwargs``."""
    return {name: kwargs.pop(name) for name, _ in parameters() if name in kwargs}


def as_bad_parameter(exc):
    """A ``click.BadParameter`` naming the option, for a hyperparameter
    error ``"<name> must ..."`` from ``FastALS``; None for other errors."""
    msg = str(exc)
    for name, _ in parameters():
        if msg.startswith(f"{name} must"):
            return click.BadParameter(msg, param_hint=f"'{cli_names(name)[0]}'")
    return None
