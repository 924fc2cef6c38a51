"""Divergence guard and solver reports of :meth:`FastALS.fit`.

ALS never increases its objective: each half-step minimizes it exactly
(Cholesky, NNLS) or lowers it from the previous factors (CG).  The finite
check in the half-step catches NaN and inf; these checks catch what it
misses, typically float32 with ``regularization=0``, where row systems that
are singular or nearly so are solved to a few digits only and training can
drift or blow up while every number stays finite:

* :func:`check_monotone` (whenever the objective is computed): with
  ``regularization > 0`` the objective may not rise from one epoch to the
  next by more than rounding allows, :data:`RISE_RTOL` times the objective
  plus the loss of all-zero factors (the scale of the problem).  With
  ``regularization=0`` singular rows make small rises possible even in
  float64 (warned); a rise above :data:`RISE_RTOL_UNREGULARIZED` of the
  scale is an error.
* :func:`check_blowup` (every epoch, computed or not; one pass over the
  factors plus 4096 sampled entries): with ``regularization=0``, the
  largest score the factors can give (largest user row norm times largest
  item row norm) may not exceed :data:`SCORE_BLOWUP` times the targets'
  scale; and, always, the squared error on a
  fixed sample of observed entries may not exceed :data:`BLOWUP` times what
  predicting 0 would give (after an exact solve, every row's weighted error
  is at most its error at a zero factor).

Either raises :class:`~fastals.exceptions.NumericalError` with advice.
"""

import warnings

import numpy as np

from .exceptions import NumericalError

#: Largest relative rise of ``objective_history`` put down to rounding.
#: Measured on ML-100k ua.base (60 epochs, k = 8..64, every objective,
#: Cholesky and CG, lambda 0.01-0.1): no epoch rose at all.
RISE_RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-5}

#: With ``regularization=0`` singular row systems are solved with the ridge
#: fallback, which is exact only to the conditioning of the system (in
#: float64 too): small rises happen and are warned about; a rise above
#: this (relative to the same scale) is an error.
RISE_RTOL_UNREGULARIZED = 1e-4

#: Sampled squared error / (squared targets + 1) above which training has
#: diverged (a fitted model is at most about 1).
BLOWUP = 100.0

#: Largest possible score (product of the largest user and item factor norms)
#: over the targets' scale above which the factors have exploded.
SCORE_BLOWUP = 1e8

SAMPLE = 4096


def _max_norm(F):
    if F.size == 0:
        return 0.0
    return float(np.sqrt(np.einsum("ij,ij->i", F, F, dtype=np.float64).max()))


def _advice(model):
    if model.regularization == 0:
        return ("regularization=0 leaves row systems singular or nearly so; "
                "use regularization > 0 or dtype=float64")
    return "raise regularization, lower alpha, or use dtype=float64"


def check_monotone(model, dtype, epoch, zero_loss):
    """Raise if the last objective rose by more than rounding allows.

    ``zero_loss`` is the loss of all-zero factors (the problem's scale).
    With ``regularization > 0`` the allowance is :data:`RISE_RTOL`; with
    ``regularization=0`` a rise up to :data:`RISE_RTOL_UNREGULARIZED` is
    only warned about (``RuntimeWarning``).
    """
    hist = model.objective_history
    if len(hist) < 2:
        return
    prev, cur = hist[-2], hist[-1]
    scale = abs(prev) + zero_loss
    rtol = RISE_RTOL[np.dtype(dtype)]
    if cur - prev <= rtol * scale + 1e-300:
        return
    what = (f"the objective rose from {prev:.6g} to {cur:.6g} at epoch {epoch} "
            f"(ALS never increases it; rounding allows {rtol:g} of "
            f"{scale:.3g})")
    if model.regularization == 0 and cur - prev <= RISE_RTOL_UNREGULARIZED * scale:
        warnings.warn(f"{what}: row systems without regularization are singular "
                      "or nearly so and solved only approximately; use "
                      "regularization > 0 for a monotone objective",
                      RuntimeWarning, stacklevel=4)
        return
    raise NumericalError(f"training diverged: {what}; {_advice(model)}")


def sample_positions(nnz):
    """Positions, in the users' CSR order, of the sampled entries."""
    pos = np.linspace(0, max(nnz - 1, 0), min(nnz, SAMPLE)).astype(np.int64)
    return pos[np.diff(pos, prepend=-1) != 0]  # sorted: np.unique without its sort


def probe(side):
    """A fixed sample of observed entries: ``(rows, cols, target, conf, base)``."""
    pos = sample_positions(int(side.indptr[-1]))
    rows = np.searchsorted(side.indptr, pos, side="right") - 1
    cols = side.indices[pos]
    t = side.target[pos].astype(np.float64)
    c = side.conf[pos].astype(np.float64)
    return rows, cols, t, c, float(np.sum(c * (t * t + 1.0)))


def sample_error(model, Xr, Yr, t, c):
    """Weighted squared error of sampled entries, given their factor rows
    ``Xr`` (user side) and ``Yr`` (item side), targets ``t`` and weights ``c``."""
    Yc = Yr.astype(np.float64)
    offset = 0.0
    if model.use_bias:  # as the solves see it: bias column 1, bias to offset
        offset = Yc[:, -1].copy()
        Yc[:, -1] = 1.0
    pred = np.einsum("ij,ij->i", Xr.astype(np.float64), Yc) + offset
    return float(np.sum(c * (t - pred) ** 2))


def check_blowup(model, sample, X, Y, epoch):
    """Raise if the sampled training error shows factors that exploded."""
    rows, cols, t, c, base = sample
    if rows.size == 0:
        return
    err = sample_error(model, X[rows], Y[cols], t, c)
    norms = (_max_norm(X), _max_norm(Y)) if model.regularization == 0 else (0.0, 0.0)
    judge_blowup(model, err, base, float(np.abs(t).max()), *norms,
                 lambda: max(float(np.abs(X).max()), float(np.abs(Y).max())), epoch)


def judge_blowup(model, err, base, t_max, norm_x, norm_y, entry_max, epoch):
    """The decision of :func:`check_blowup` from its numbers: sampled error
    ``err`` against ``base``, largest target ``t_max``, largest factor row
    norms (used only with ``regularization=0``), and ``entry_max()`` the
    largest factor entry (for the message)."""
    # Largest score the factors can produce, against the targets' scale:
    # exploding rows (often items with one or two ratings) show here even
    # when the sampled entries still fit.
    # (Only without regularization: with it the systems are definite and
    # the scale of X against Y is free, which makes this bound loose.)
    reach = norm_x * norm_y if model.regularization == 0 else 0.0
    if not reach <= SCORE_BLOWUP * (t_max + 1.0):
        raise NumericalError(
            f"training diverged at epoch {epoch}: factor rows grew to norms "
            f"{norm_x:.3g} and {norm_y:.3g}, scores up to {reach:.3g} "
            f"for targets of size {t_max:.3g}; {_advice(model)}")
    if not err <= BLOWUP * base:
        raise NumericalError(
            f"training diverged at epoch {epoch}: the error on the training "
            f"ratings is {err / base:.3g} times that of predicting 0 (factor "
            f"entries up to {entry_max():.3g}); {_advice(model)}")


def dot64(a, b=None, c=None, block=1 << 20):
    """``sum(a * b * c)`` (missing factors: 1) in float64, block by block
    (no float64 copy of the whole arrays)."""
    total = 0.0
    for s in range(0, a.size, block):
        t = a[s:s + block].astype(np.float64)
        for f in (b, c):
            if f is not None:
                t *= f[s:s + block]
        total += float(t.sum())
    return total


class Watch:
    """The checks of one fit: sample, scale and solver counts."""

    def __init__(self, model, users, norm, zero_loss=None):
        self.model = model
        self.sample = probe(users)
        # The loss of all-zero factors: the scale of the objective (given
        # where the fit has it already).
        self.zero_loss = (dot64(users.conf, users.target, users.target) / norm
                          if zero_loss is None else zero_loss)
        self.counts = {"epochs": 0, "ridge_fallback_rows": 0, "nnls_capped_rows": 0}

    def count(self, result, epoch=False):
        """Add a half-step's ``(counter name, count)``; ``epoch``: one more epoch."""
        self.counts["epochs"] += int(epoch)
        kind, n = result
        if kind is not None:
            self.counts[kind] += int(n)

    def check_blowup(self, X, Y, epoch):
        check_blowup(self.model, self.sample, X, Y, epoch)

    def check_error(self, loss, epoch):
        """:func:`check_blowup`'s error test on the training error of every
        cell (``loss``, per unit of weight) where a fit has it for free."""
        if not loss <= BLOWUP * (self.zero_loss + 1.0):
            raise NumericalError(
                f"training diverged at epoch {epoch}: the training error is "
                f"{loss:.3g}, against {self.zero_loss:.3g} for all-zero factors; "
                f"{_advice(self.model)}")

    def check_monotone(self, dtype, epoch):
        check_monotone(self.model, dtype, epoch, self.zero_loss)


def warn_solver_counts(model, counts, users, items):
    """Warn about NNLS rows cut at the iteration cap, and about ridge
    fallbacks that ``regularization > 0`` should have made impossible."""
    if counts["nnls_capped_rows"]:
        warnings.warn(
            f"NNLS stopped {counts['nnls_capped_rows']} row solve(s) at its "
            "iteration cap (3 * factors + 30): those factors are feasible but "
            "may not be optimal (see solver_report)", RuntimeWarning, stacklevel=3)
    n = counts["ridge_fallback_rows"]
    if n and model.regularization > 0:
        expected = 0
        if model.weighted_regularization and model.objective == "explicit":
            # rows without ratings get lam * 0 = 0: a zero system, expected
            per_epoch = int(np.sum(users.counts == 0) + np.sum(items.counts == 0))
            expected = per_epoch * counts["epochs"]
        if n > expected:
            hint = ("consider dtype=float64" if np.dtype(model.dtype) == np.float32
                    else "rescale the values or raise regularization")
            warnings.warn(
                f"{n - expected} row system(s) were not positive definite despite "
                f"regularization={model.regularization} (rounding in "
                f"{np.dtype(model.dtype).name}) and were solved with an added "
                f"ridge; {hint} (see solver_report)",
                RuntimeWarning, stacklevel=3)

