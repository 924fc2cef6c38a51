"""The implicit-feedback term of :class:`fastals.BayesianALS` (``implicit_feedback=True``).

The model and the sampler are described in :mod:`fastals.kernels.gibbs_implicit`:
each user's factors get ``h_u = |N(u)|^-1/2 sum_{j in N(u)} z_j`` added, the
rows ``z_j`` one per item with a Gaussian prior under the same kind of
hyperprior as the other rows.  :class:`ImplicitTerm` holds the state of one
fit and does the three steps a sweep needs: shift the users' targets before
their draw, form the effective user rows after it, and draw ``Z``.
"""

import copy

import numpy as np

from .kernels import gibbs, gibbs_implicit

#: ``side`` of :func:`gibbs.stream_key` for the implicit rows (0: users, 1: items).
STREAM_SIDE = 2


class ImplicitTerm:
    """State of the implicit term during one fit.

    Parameters
    ----------
    users : object with ``indptr``, ``indices``, ``target``
        The users' CSR (``fastals.bayes._Side``); ``shifted`` is a copy of it
        whose ``target`` is rewritten each sweep.
    items : same
        The items' CSR (who rated each item).
    k : int
        Number of factors.
    dtype : numpy dtype
        Of the factors.
    """

    def __init__(self, users, items, k, dtype):
        m, n = users.n_rows, items.n_rows
        self.users, self.items = users, items
        self.shifted = copy.copy(users)
        self.shifted.target = np.empty_like(users.target)
        self.scale = gibbs_implicit.user_scales(users.indptr)
        self.Z = np.zeros((n, k), dtype)
        self.H = np.zeros((m, k), dtype)
        self.R = np.empty((m, k + 1))
        self.moments = (np.empty(k), np.empty((k, k)))

    def shift(self, Dv):
        """``h_u`` from the current ``Z``, and the users' targets ``r_ui - y_i . h_u``
        (``Dv``: the items' design rows)."""
        u = self.users
        gibbs_implicit.implicit_sums(u.indptr, u.indices, self.scale, self.Z, self.H)
        gibbs_implicit.shift_targets(u.indptr, u.indices, u.target, Dv, self.H,
                                     self.shifted.target)

    def effective(self, X, M, E):
        """``E = X + [H, 0]`` (the effective user rows) and ``M += [H, 0]``
        (their conditional means)."""
        gibbs_implicit.add_implicit(X, self.H, E)
        gibbs_implicit.add_implicit(M, self.H, M)

    def sample(self, X, P, Pm, hyper, rng, seed, sweep):
        """Draw ``Z``'s hyperparameters (``hyper(Z, rng, moments)``) and then
        ``Z`` given the effective user rows; ``X`` (the user rows
        ``[x_u, b_u]``) is updated to the new ``Z``."""
        Pz, Pzm = hyper(self.Z, rng, self.moments)
        key = np.uint64(gibbs.stream_key(seed, sweep, STREAM_SIDE))
        it = self.items
        failed = gibbs_implicit.sample_implicit(it.indptr, it.indices, self.scale, X,
                                                P, Pm, Pz, Pzm, key, self.Z, self.R)
        return failed

