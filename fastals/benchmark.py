"""Seconds per ALS iteration against the number of factors.

:func:`run_benchmark` trains on deterministic synthetic data (power-law
user activity and item popularity, from :func:`fastals.make_ratings`) for
each number of factors, prints a table and, when ``plot`` is given, writes
a PNG (needs matplotlib: ``pip install fastals[plot]``).  ``fastals bench``
on the command line calls it.

Times come from the fit's callback, so they cover training only: building
the CSR/CSC arrays before the first epoch is excluded, and the first fit of
each configuration (Numba compilation, or loading it from the cache) is
done once beforehand and not timed.
"""

import time

import numpy as np

DEFAULT_FACTORS = (16, 32, 64, 128)


def _data(n_users, n_items, n_ratings, seed):
    import scipy.sparse as sp

    from .data.synthetic import make_ratings
    r = make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_ratings,
                     implicit=True, seed=seed)
    return sp.csr_matrix((r.values, (r.user_ids, r.item_ids)),
                         shape=(n_users, n_items))


def run_benchmark(factors=DEFAULT_FACTORS, n_users=20_000, n_items=5_000,
                  n_ratings=1_000_000, objective="implicit", solver="cholesky",
                  iterations=3, threads=0, seed=0, plot=None, echo=print):
    """Time ALS iterations for each number of factors.

    Parameters
    ----------
    factors : sequence of int
    n_users, n_items, n_ratings : int
        Size of the synthetic data set.
    objective, solver : str
        As in :class:`fastals.FastALS` (implicit uses ``confidence="alpha_r"``).
    iterations : int
        Iterations timed per number of factors (the median is reported).
    threads : int
        Numba threads (0 = all cores).
    seed : int
        Seed of the data and of the initial factors.
    plot : str or None
        Path of a PNG plot of seconds per iteration against factors.
    echo : callable
        Receives each line of the table.

    Returns
    -------
    list of dict
        One row per number of factors: ``factors``, ``seconds_per_iteration``,
        ``iterations``.
    """
    from .model import FastALS

    t = time.perf_counter()
    R = _data(n_users, n_items, n_ratings, seed)
    echo(f"data: {R.shape[0]} users x {R.shape[1]} items, {R.nnz} interactions "
         f"(synthetic, seed {seed}, {time.perf_counter() - t:.1f} s)")
    echo(f"objective={objective} solver={solver} threads={threads or 'all'} "
         f"iterations={iterations}")
    echo(f"{'factors':>8} {'s/iter':>10} {'iter/s':>8}")
    rows = []
    for k in factors:
        kw = dict(objective=objective, solver=solver, factors=int(k),
                  regularization=0.05, random_state=seed, num_threads=threads,
                  calculate_training_loss=False)
        if objective == "implicit":
            kw.update(confidence="alpha_r", alpha=1.0)
        FastALS(iterations=1, **kw).fit(R)  # compile / load from cache
        stamps = []
        FastALS(iterations=iterations, callback=lambda e, loss, s: stamps.append(s),
                **kw).fit(R)
        per = float(np.median(np.diff([0.0] + stamps)))
        rows.append({"factors": int(k), "seconds_per_iteration": per,
                     "iterations": len(stamps)})
        echo(f"{k:>8} {per:>10.4f} {1 / per if per > 0 else float('inf'):>8.2f}")
    if plot:
        plot_rows(rows, plot, title=f"fastals {objective}/{solver}, "
                  f"{R.shape[0]}x{R.shape[1]}, {R.nnz} nnz", echo=echo)
    return rows


def plot_rows(rows, path, title="", echo=print):
    """Write seconds per iteration against factors as a PNG.

    Returns True when written; without matplotlib prints why and returns
    False (the table is still complete).
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        echo(f"plot not written: matplotlib is not installed "
             f"(pip install 'fastals[plot]'); {path} skipped")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["factors"] for r in rows], [r["seconds_per_iteration"] for r in rows],
            "o-")
    ax.set_xlabel("factors")
    ax.set_ylabel("seconds per iteration")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    echo(f"plot written to {path}")
    return True
