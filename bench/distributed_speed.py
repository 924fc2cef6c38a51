"""Per-iteration time and bytes moved: FastALS on a 2-worker LocalCluster
(1 thread each) against FastALS on one machine with 2 threads, side by side.

Usage (from the repository root)::

    python bench/distributed_speed.py --ratings 3000000 --repeats 3
    python bench/distributed_speed.py --20m --repeats 3

Data: :func:`fastals.make_ratings` (Zipf-like users and items, explicit
stars), cached as ``.npz`` like the other benchmark sets; ``--20m`` takes
the 20M synthetic set of ``bench/_data.py`` (140k users x 27k items,
interaction counts) instead, trained with the same explicit objective.  Each repeat runs
the single-machine fit and the cluster fit one after the other; the
per-iteration time is the median epoch time of a fit, the first epoch
(compilation, warm-up) excluded.  Bytes: the count of factor-row bytes
shipped between workers that :mod:`fastals.distributed` computes from the
blocks' touched lists (``cluster_stats_``), the formula of
``docs/distributed.md``, and distributed's own count
(``Worker.transfer_outgoing_bytes_total``, summed over the workers, per
epoch).
"""

import argparse
import os
import sys
import time

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _data import cache_dir, synthetic  # noqa: E402
from fastals import FastALS  # noqa: E402


def ratings(n_ratings, seed=0):
    # 3M: 50k users x 15k items; scaled with sqrt(nnz) like the 20M bench set.
    scale = (n_ratings / 3e6) ** 0.5
    m, n = int(50_000 * scale), int(15_000 * scale)
    path = cache_dir() / f"explicit-{n_ratings}-seed{seed}-make_ratings-v1.npz"
    if path.is_file():
        return sp.load_npz(path).tocsr()
    from fastals.synthetic import make_ratings
    r = make_ratings(n_users=m, n_items=n, n_ratings=n_ratings, seed=seed)
    R = sp.csr_matrix((r.values, (r.user_ids, r.item_ids)), shape=(m, n))
    R.sort_indices()
    sp.save_npz(path, R, compressed=False)
    return R


def peak_rss_mb(client):
    """Peak resident memory (MB) of this process and of each worker."""
    import resource

    def peak(dask_worker=None):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak(), sorted(client.run(peak).values())


def task_seconds(stream, n_epochs):
    """Compute seconds per epoch by task name, and the slowest / fastest
    solve of a half-step (block imbalance), from Dask's task stream."""
    by_name, solves = {}, []
    for t in stream:
        name = t["key"][0] if isinstance(t["key"], tuple) else t["key"]
        name = name.split("-", 1)[0]  # "_solve-<uuid>": impure tasks
        for s in t["startstops"]:
            if s["action"] == "compute":
                d = s["stop"] - s["start"]
                by_name[name] = by_name.get(name, 0.0) + d
                if name == "_solve":
                    solves.append((s["start"], d))
    per_epoch = {k: v / n_epochs for k, v in sorted(by_name.items(), key=lambda x: -x[1])}
    return per_epoch, solves


def outgoing(client):
    got = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return sum(got.values())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", type=int, default=3_000_000)
    ap.add_argument("--20m", dest="big", action="store_true",
                    help="the 20M synthetic set of bench/_data.py (overrides --ratings)")
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=None)
    a = ap.parse_args()
    from distributed import Client, LocalCluster, get_task_stream
    R = synthetic("20M") if a.big else ratings(a.ratings)
    m, n = R.shape
    print(f"{R.nnz:,} ratings, {m:,} users x {n:,} items, k={a.factors}, explicit, "
          f"float32, {a.iterations} iterations; load {os.getloadavg()[0]:.1f}",
          flush=True)
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None, silence_logs=40)
    client = Client(cluster)
    params = dict(factors=a.factors, iterations=a.iterations, regularization=0.05,
                  random_state=0)
    for rep in range(a.repeats):
        ticks = []
        t = time.perf_counter()
        FastALS(num_threads=a.workers, **params,
                callback=lambda e, l, s: ticks.append(s)).fit(R)
        single = np.median(np.diff(ticks))
        t_single = time.perf_counter() - t
        sent = []
        t = time.perf_counter()
        model = FastALS(**params, callback=lambda e, l, s: sent.append(outgoing(client)))
        before = outgoing(client)
        with get_task_stream(client) as ts:
            model.fit(R, client=client, blocks=a.blocks)
        t_cluster = time.perf_counter() - t
        st = model.cluster_stats_
        dask_s = np.median(st["seconds_per_iteration"][1:])
        measured = np.median(np.diff([before] + sent)[1:])
        # docs/distributed.md's closed form: every block touches every row
        # of the other side, blocks spread evenly over the W workers.
        W, bu, bi = st["workers"], st["user_blocks"], st["item_blocks"]
        w = a.factors + 1 if model.use_bias else a.factors  # solved width
        formula = model.user_factors.dtype.itemsize * w * (W - 1) / W * (
            bu * n + bi * m)
        print(f"repeat {rep + 1}: per iteration single {single:.3f} s, cluster "
              f"{dask_s:.3f} s, ratio {dask_s / single:.2f}; whole fit {t_single:.1f} s "
              f"vs {t_cluster:.1f} s; blocks {bu}+{bi}, touched rows "
              f"{st['touched_rows']:,}; bytes/iteration: formula "
              f"{formula / 1e6:.2f} MB, counted from the touched lists "
              f"{st['bytes_per_iteration'] / 1e6:.2f} MB, measured (distributed's "
              f"transfer counter) {measured / 1e6:.2f} MB, measured/formula "
              f"{measured / formula:.3f}; load {os.getloadavg()[0]:.1f}", flush=True)
        per_epoch, solves = task_seconds(ts.data, a.iterations)
        print("  task compute seconds per epoch (both workers): " + ", ".join(
            f"{k} {v:.3f}" for k, v in per_epoch.items() if v >= 0.005), flush=True)
        solves.sort()
        pairs = [sorted(d for _, d in solves[i:i + bu]) for i in range(0, len(solves), bu)]
        print("  solve tasks per half-step, fastest/slowest block: " + ", ".join(
            f"{p[0]:.2f}/{p[-1]:.2f}" for p in pairs[2:8]), flush=True)
        client_mb, worker_mb = peak_rss_mb(client)
        print(f"  peak RSS: client {client_mb:,.0f} MB, workers "
              f"{', '.join(f'{w:,.0f}' for w in worker_mb)} MB", flush=True)
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
