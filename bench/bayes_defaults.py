"""Choosing BayesianALS's defaults on validation splits carved from the
MovieLens-100k training files (the ``.test`` files are never read).

Usage::

    python bench/bayes_defaults.py [--data DIR] [--splits ua,u1,u2]
        [--seeds 0,1] [--threads 1] CONFIG [CONFIG ...]

Each ``CONFIG`` is a comma-separated list of ``BayesianALS`` keyword
arguments, for instance ``"iterations=100"`` or ``"factors=16,burn_in=10"``
(``""``: the defaults), and of the Normal-Wishart hyperprior's constants,
which are not options: ``wishart_scale`` (``W0 = scale * I``, default 1),
``wishart_dof`` (``nu0 = w + dof``, default 0) and ``beta0`` (default 2),
patched into ``fastals.bayes`` for that config only.  For each split its ``.base`` file is split again:
``ua``: 10 ratings per user held out (as ``ua.test`` was made from
``u.data``), ``u1``-``u5``: 20 % of the ratings held out at random (as
``u*.test``); the split is seeded by the split name only, so every config
sees the same one.  Prints the validation RMSE (predictions clipped to
[1, 5]) of each config on each split, averaged over the seeds, and the fit
time.  Nothing from the data set is written anywhere.
"""

import argparse
import time
import zlib
from pathlib import Path

import numpy as np

from bayes_vs_myfm import default_root, load, rmse  # first: puts this checkout on sys.path
import fastals.bayes  # noqa: E402
from fastals import BayesianALS  # noqa: E402

HYPER = ("wishart_scale", "wishart_dof", "beta0")


def set_wishart(scale=1.0, dof=0, beta0=2.0):
    """Set the Normal-Wishart hyperprior's constants that fits read:
    ``Lambda ~ W(scale * I, w + dof)``, ``m ~ N(0, (beta0 Lambda)^-1)``."""
    fastals.bayes._WISHART_SCALE = scale
    fastals.bayes._WISHART_DOF = dof
    fastals.bayes._BETA0 = beta0


def carve(name, train):
    """``(fit part, validation part)`` of a training file, as described above."""
    u, i, r = train
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if name == "ua":
        hold = np.zeros(u.size, bool)
        order = rng.permutation(u.size)
        taken = {}
        for e in order:
            if taken.get(u[e], 0) < 10:
                taken[u[e]] = taken.get(u[e], 0) + 1
                hold[e] = True
    else:
        hold = rng.random(u.size) < 0.2
    keep = ~hold
    return (u[keep], i[keep], r[keep]), (u[hold], i[hold], r[hold])


def parse(config):
    out = {}
    for part in filter(None, config.split(",")):
        key, value = part.split("=")
        out[key.strip()] = eval(value, {"np": np})  # numbers, strings, np dtypes
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("configs", nargs="+")
    ap.add_argument("--data", type=Path, default=default_root())
    ap.add_argument("--splits", default="ua,u1,u2")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    splits = args.splits.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    data = {s: carve(s, load(args.data / f"{s}.base")) for s in splits}
    BayesianALS(iterations=2, burn_in=1, random_state=0).fit(
        tuple(a[:2000] for a in data[splits[0]][0]))
    print("| config | " + " | ".join(splits) + " | mean | fit s |")
    print("|---" * (len(splits) + 3) + "|")
    for config in args.configs:
        kw = parse(config)
        set_wishart(float(kw.pop("wishart_scale", 1.0)), int(kw.pop("wishart_dof", 0)),
                    float(kw.pop("beta0", 2.0)))
        cells, secs = [], 0.0
        for s in splits:
            (fit, val) = data[s]
            res = []
            for seed in seeds:
                t0 = time.perf_counter()
                model = BayesianALS(random_state=seed, num_threads=args.threads, **kw).fit(fit)
                secs += time.perf_counter() - t0
                res.append(rmse(model.predict(val[0], val[1], unknown="default"), val[2]))
            cells.append(np.mean(res))
        print(f"| {config or 'defaults'} | " + " | ".join(f"{c:.4f}" for c in cells)
              + f" | {np.mean(cells):.4f} | {secs / len(splits) / len(seeds):.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
