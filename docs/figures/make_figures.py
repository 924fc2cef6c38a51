"""Draw the figures of the documentation (needs matplotlib).

    python docs/figures/make_figures.py            # all three figures
    python docs/figures/make_figures.py loss rmse  # some of them

* ``loss_vs_epoch.png``: training loss against epoch of the dense objective
  (the original ``train.py``: ``lambda=0.01``, 100 epochs) for 2, 15 and 100
  factors, with the truncated-SVD bound each one must reach.
* ``speed_vs_factors.png``: seconds per iteration against factors, fastals
  and ``implicit`` side by side on synthetic implicit-feedback data.
  Measured when ``implicit`` is installed (``pip install -e ".[bench]"``), and
  the timings are then stored in ``speed_timings.json`` beside this script;
  without ``implicit`` the script says so and plots the stored timings.
* ``rmse_vs_factors.png``: test RMSE on MovieLens-100k ``ua.test`` against
  factors for the tuned ``FastALS`` and ``BayesianALS``.

The MovieLens figures need MovieLens-100k (``--data DIR``, else
``$FASTALS_DATA/ml-100k``, else ``../shared/data/ml-100k`` beside the
repository). Its licence forbids redistribution, so these figures are made
when the documentation is built and never committed. Without the data the
script says so and draws the same figures on the built-in synthetic data
(shaped like MovieLens-100k); each figure's title says which data it shows.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))  # the fastals of this checkout

import fastals  # noqa: E402
from fastals import BayesianALS, FastALS  # noqa: E402

TIMINGS = HERE / "speed_timings.json"
FIGURES = ("loss", "speed", "rmse")


def find_ml100k(arg=None):
    """The ml-100k folder, or None when it is not there."""
    if arg:
        path = Path(arg)
        if not (path / "ua.base").is_file():
            sys.exit(f"make_figures.py: --data {arg}: no ua.base there (give the ml-100k folder)")
        return path
    candidates = []
    if os.environ.get("FASTALS_DATA"):
        candidates.append(Path(os.environ["FASTALS_DATA"]) / "ml-100k")
    candidates.append(ROOT.parent / "shared" / "data" / "ml-100k")
    for path in candidates:
        if (path / "ua.base").is_file() and (path / "ua.test").is_file():
            return path
    return None


def _read(path):
    d = np.loadtxt(path, dtype=np.int64)
    return d[:, 0], d[:, 1], d[:, 2].astype(np.float64)


def rating_sets(ml100k):
    """(train, test, label): MovieLens ua.base / ua.test, or synthetic data."""
    if ml100k is not None:
        return _read(ml100k / "ua.base"), _read(ml100k / "ua.test"), \
            "MovieLens-100k"
    r = fastals.make_ratings(seed=0)
    test = np.random.default_rng(0).random(r.n_ratings) < 0.1
    tr = (r.user_ids[~test], r.item_ids[~test], r.values[~test])
    te = (r.user_ids[test], r.item_ids[test], r.values[test])
    return tr, te, "synthetic data shaped like MovieLens-100k (MovieLens-100k not found)"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ------------------------------------------------------------------ figures
def loss_figure(ml100k, out, ks=(2, 15, 100), epochs=100):
    (u, i, v), _, label = rating_sets(ml100k)
    if ml100k is not None:  # the original script's matrix: ids as positions
        R = sp.csr_matrix((v, (u - 1, i - 1)), shape=(943, 1682))
    else:
        R = sp.csr_matrix((v, (u, i)))
    m, n = R.shape
    s = np.linalg.svd(R.toarray(), compute_uv=False)
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    rows = []
    for k, color in zip(ks, ("C0", "C1", "C2")):
        model = FastALS(objective="dense", factors=k, regularization=0.01,
                        iterations=epochs, random_state=0).fit(R)
        loss = np.asarray(model.loss_history)
        bound = float((s[k:] ** 2).sum() / (m * n))
        x = np.arange(1, len(loss) + 1)
        ax.plot(x, loss, color=color, label=f"k = {k}")
        ax.axhline(bound, color=color, ls="--", lw=1)
        ax2.semilogy(x, np.maximum(loss - bound, 1e-7), color=color, label=f"k = {k}")
        rows.append((k, loss[-1], bound))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE over all cells)")
    ax.set_title("dense objective, lambda = 0.01; dashed: truncated-SVD bound", fontsize=9)
    ax.legend(loc="center right")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("loss - SVD bound")
    ax2.set_title("distance to the bound (floor 1e-7: float32 rounding)", fontsize=9)
    ax2.legend()
    fig.suptitle(f"Loss against epoch, {label} "
                 f"{'ua.base' if ml100k is not None else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    for k, last, bound in rows:
        print(f"  k={k:3d}: loss after {epochs} epochs {last:.6f}, SVD bound {bound:.6f}")


def _speed_data(n_users=20_000, n_items=5_000, n_ratings=1_000_000):
    r = fastals.make_ratings(n_users=n_users, n_items=n_items, n_ratings=n_ratings,
                             implicit=True, seed=0)
    return sp.csr_matrix((r.values.astype(np.float32), (r.user_ids, r.item_ids)),
                         shape=(n_users, n_items))


def _fastals_seconds(R, k, solver, iterations, threads):
    per, last = [], [time.perf_counter()]

    def tick(*_):
        now = time.perf_counter()
        per.append(now - last[0])
        last[0] = now

    model = FastALS(objective="implicit", confidence="alpha_r", alpha=1.0,
                    regularization=0.05, factors=k, solver=solver, iterations=iterations,
                    num_threads=threads, calculate_training_loss=False,
                    dtype=np.float32, random_state=0, callback=tick)
    FastALS(**{**model.get_params(), "iterations": 1, "callback": None}).fit(R[:500])
    last[0] = time.perf_counter()
    model.fit(R)
    return float(np.median(per[1:] if len(per) > 1 else per))


def _implicit_seconds(R, k, use_cg, iterations, threads):
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits
    per = []
    with threadpool_limits(1, "blas"):  # as implicit recommends
        model = AlternatingLeastSquares(factors=k, regularization=0.05, alpha=1.0,
                                        use_cg=use_cg, iterations=iterations,
                                        num_threads=threads, random_state=0,
                                        calculate_training_loss=False, dtype=np.float32)
        model.fit(R, show_progress=False,
                  callback=lambda it, elapsed, loss: per.append(elapsed))
    return float(np.median(per[1:] if len(per) > 1 else per))


def measure_speed(ks=(16, 32, 64, 128), iterations=3, threads=2):
    """Seconds per iteration of both libraries, back to back for each case."""
    R = _speed_data()
    rows = []
    for k in ks:
        for solver, use_cg in (("cg", True), ("cholesky", False)):
            imp = _implicit_seconds(R, k, use_cg, iterations, threads)
            fa = _fastals_seconds(R, k, solver, iterations, threads)
            rows.append({"factors": k, "solver": solver, "implicit": imp, "fastals": fa})
            print(f"  k={k:3d} {solver:8s}: implicit {imp:.3f} s, fastals {fa:.3f} s, "
                  f"ratio {fa / imp:.2f}")
    import implicit
    return {
        "data": f"fastals.make_ratings(20_000, 5_000, 1_000_000, implicit=True, seed=0): "
                f"{R.shape[0]:,} users x {R.shape[1]:,} items, {R.nnz:,} interactions",
        "settings": "implicit objective, confidence alpha * r, alpha=1, "
                    "regularization=0.05, float32, 3 CG steps; median of "
                    f"{iterations - 1} timed iterations after one",
        "threads": threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                   f"load average {os.getloadavg()[0]:.1f} at the start",
        "versions": f"fastals {fastals.__version__}, implicit {implicit.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
    }


def speed_figure(out, measure=True):
    try:
        import implicit  # noqa: F401
        have_implicit = True
    except ImportError:
        have_implicit = False
    if have_implicit and measure:
        result = measure_speed()
        tmp = TIMINGS.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(tmp, TIMINGS)
        print(f"  timings stored in {TIMINGS.relative_to(ROOT)}")
    else:
        why = ("implicit is not installed (pip install -e \".[bench]\" to measure)"
               if not have_implicit else "--stored-speed given")
        print(f"  {why}: plotting the timings stored in {TIMINGS.relative_to(ROOT)}")
        result = json.loads(TIMINGS.read_text())
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    rows = result["rows"]
    for solver, marker in (("cg", "o"), ("cholesky", "s")):
        sel = sorted((r for r in rows if r["solver"] == solver), key=lambda r: r["factors"])
        ks = [r["factors"] for r in sel]
        ax.plot(ks, [r["implicit"] for r in sel], marker + "--", color="C7",
                label=f"implicit, {solver}")
        ax.plot(ks, [r["fastals"] for r in sel], marker + "-", color="C0" if solver == "cg"
                else "C3", label=f"fastals, {solver}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["factors"] for r in rows}))
    ax.set_xticklabels(sorted({r["factors"] for r in rows}))
    ax.set_xlabel("factors")
    ax.set_ylabel("seconds per iteration")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Synthetic implicit data, {result['threads']} threads, "
                 f"{result['date']}\n{result['versions']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def rmse_figure(ml100k, out, fastals_ks=(2, 4, 8, 16, 32, 64, 128),
                bayes_ks=(2, 4, 8, 16, 32), sweeps=100):
    (tu, ti, tv), (su, si, sv), label = rating_sets(ml100k)
    plt = _plt()
    res = {"FastALS": [], "BayesianALS": []}
    for k in fastals_ks:
        m = FastALS(factors=k, regularization=1.25, regularization_exponent=0.5,
                    weighted_regularization=True, use_bias=True, iterations=15,
                    random_state=0).fit((tu, ti, tv))
        err = m.predict(su, si, unknown="default") - sv
        res["FastALS"].append((k, float(np.sqrt(np.mean(err ** 2)))))
    for k in bayes_ks:
        m = BayesianALS(factors=k, iterations=sweeps, random_state=0).fit((tu, ti, tv))
        err = m.predict(su, si, unknown="default") - sv
        res["BayesianALS"].append((k, float(np.sqrt(np.mean(err ** 2)))))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, marker in (("FastALS", "o"), ("BayesianALS", "s")):
        ks, rm = zip(*res[name])
        ax.plot(ks, rm, marker + "-", label=name)
        print(f"  {name}: " + ", ".join(f"k={k} {r:.4f}" for k, r in res[name]))
    ax.set_xscale("log", base=2)
    ax.set_xticks(fastals_ks)
    ax.set_xticklabels(fastals_ks)
    ax.set_xlabel("factors")
    ax.set_ylabel("test RMSE")
    ax.grid(True, alpha=0.3)
    ax.legend()
    split = "ua.base -> ua.test" if ml100k is not None else ""
    ax.set_title(f"{label} {split}\nFastALS: tuned penalty 1.25 sqrt(n), biases, "
                 f"15 epochs; BayesianALS: defaults, {sweeps} sweeps", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("figures", nargs="*", metavar="FIGURE",
                    help=f"some of {', '.join(FIGURES)} (default: all)")
    ap.add_argument("--data", help="the ml-100k folder")
    ap.add_argument("--synthetic", action="store_true",
                    help="draw the MovieLens figures on the synthetic data even when "
                         "MovieLens-100k is present")
    ap.add_argument("--stored-speed", action="store_true",
                    help="plot the stored timings even when implicit is installed")
    ap.add_argument("-o", "--out-dir", default=str(HERE))
    args = ap.parse_args(argv)
    try:
        _plt()
    except ImportError:
        sys.exit("make_figures.py needs matplotlib: pip install -e \".[docs]\"")
    chosen = args.figures or FIGURES
    for name in chosen:
        if name not in FIGURES:
            ap.error(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    out = Path(args.out_dir)
    ml100k = None if args.synthetic else find_ml100k(args.data)
    if args.synthetic:
        print("--synthetic: drawing the MovieLens figures on the built-in synthetic data.")
    elif ml100k is None and ("loss" in chosen or "rmse" in chosen):
        print("MovieLens-100k not found (--data DIR, $FASTALS_DATA/ml-100k or "
              "../shared/data/ml-100k): drawing the MovieLens figures on the built-in "
              "synthetic data instead; their titles say so.")
    for name in chosen:
        t = time.perf_counter()
        path = out / {"loss": "loss_vs_epoch.png", "speed": "speed_vs_factors.png",
                      "rmse": "rmse_vs_factors.png"}[name]
        print(f"{path.name}:")
        if name == "loss":
            loss_figure(ml100k, path)
        elif name == "speed":
            speed_figure(path, measure=not args.stored_speed)
        else:
            rmse_figure(ml100k, path)
        print(f"  written in {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
