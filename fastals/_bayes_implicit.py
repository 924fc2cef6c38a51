"""The implicit-feedback term of :class:`fastals.BayesianALS` (``implicit_feedback=True``).

The model and the sampler are described in :mod:`fastals.kernels.gibbs_implicit`:
each user's factors get ``h_u = |N(u)|^-1/2 sum_{j in N(u)} z_j`` added, the
rows ``z_j`` one per item with a Gaussian prior under the same kind of
hyperprior as the other rows.  :class:`ImplicitTerm` holds the state of one
fit and does the three steps a sweep needs: the sums ``h_u`` before the
users' draw (which shifts their targets by ``y_i . h_u``, see
:func:`fastals.kernels.gibbs.sample_rows`), the effective user rows after
it, and the draw of ``Z``.
"""

import numpy as np

from .kernels import gibbs, gibbs_implicit
from .kernels.lanes import LANES

#: ``side`` of :func:`gibbs.stream_key` for the implicit rows (0: users, 1: items).
STREAM_SIDE = 2


class ImplicitTerm:
    """State of the implicit term during one fit.

    A sweep calls :meth:`prepare` before the users' hyperparameters and
    draw (which shifts the targets by ``y_i . h_u`` with ``imp.H``),
    :meth:`effective` after it and :meth:`sample` before the items' draw,
    which then sees the effective rows.

    Parameters
    ----------
    users, items : ``fastals.bayes._Side``
        The users' CSR and the items' (who rated each item).
    k : int
        Number of factors.
    wp : int
        A multiple of ``LANES``, at least ``k``: the width of the padded rows.
    dtype : numpy dtype
        Of the factors.
    """

    def __init__(self, users, items, k, wp, dtype):
        m, n = users.n_rows, items.n_rows
        self.users, self.items = users, items
        self.scale = gibbs_implicit.user_scales(users.indptr)
        self.Z = np.zeros((n, k), dtype)
        # the row arrays read in whole vectors start on a cache line
        self.Zp = gibbs.aligned_zeros((n, wp), dtype)    # Z, zero-padded
        self.H = gibbs.aligned_zeros((m, wp), dtype)     # h_u, zero past column k
        self.zeta = np.empty((n, k))
        self.r = gibbs.aligned_zeros((m, -(-k // LANES) * LANES), dtype)
        self.moments = (np.empty(k), np.empty((k, k)))
        self.drawn = False

    def prepare(self, X, E):
        """Before the users' hyperparameters and draw: ``h_u`` from the
        current ``Z`` in ``H`` (zero past column ``k``: the users' draw
        sees the targets ``r_ui - y_i . h_u``); after a draw of ``Z``, the
        user rows ``X = E - [H, 0]`` under it (the effective rows ``E``
        unchanged)."""
        u = self.users
        gibbs_implicit.implicit_sums(u.indptr, u.indices, self.scale, self.Zp, self.H)
        if self.drawn:
            gibbs_implicit.add_implicit(E, self.H, -1.0, X)

    def effective(self, X, M, E):
        """``E = X + [H, 0]`` (the effective user rows) and ``M += [H, 0]``
        (their conditional means)."""
        gibbs_implicit.add_implicit(X, self.H, 1.0, E)
        gibbs_implicit.add_implicit(M, self.H, 1.0, M)

    def sample(self, X, P, Pm, hyper, rng, seed, sweep):
        """Draw ``Z``'s hyperparameters (``hyper(Z, rng, moments)``), then ``Z``
        given the effective user rows (``X``: the user rows under the
        current ``Z``; ``P``, ``Pm``: their prior).  Returns False when a
        precision was not positive definite."""
        Pz, Pzm = hyper(self.Z, rng, self.moments)
        key = np.uint64(gibbs.stream_key(seed, sweep, STREAM_SIDE))
        it = self.items
        self.drawn = True
        return gibbs_implicit.sample_implicit(
            it.indptr, it.indices, self.scale, X, P, Pm, Pz, Pzm, key, self.Z,
            self.Zp, self.zeta, self.r, 1.0) == 0
