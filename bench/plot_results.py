"""Plot the JSON written by the benchmark suites (``bench/conftest.py``).

    python bench/plot_results.py ALS_JSON [VS_IMPLICIT_JSON] -o docs/benchmarks.png
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()
    rows = []
    for path in args.results:
        rows += json.load(open(path))["rows"]
    panels = [("ml100k", "fastals per iteration, MovieLens-100k"),
              ("synth", "fastals per iteration, synthetic 20M"),
              ("vs-impl", "vs implicit, synthetic 20M")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (key, title) in zip(axes, panels):
        if key == "vs-impl":
            sel = [r for r in rows if r["suite"] == "vs-impl"]
            series = sorted({(r["library"], r["solver"]) for r in sel})
        else:
            sel = [r for r in rows if r["suite"] == "als" and r["data"] == key]
            series = sorted({(r["objective"], r["solver"]) for r in sel})
        for a, b in series:
            pts = sorted((r["factors"], r["s_per_iter"]) for r in sel
                         if (r.get("library") if key == "vs-impl" else r["objective"]) == a
                         and r["solver"] == b)
            if pts:
                ax.plot(*zip(*pts), "o-", label=f"{a} {b}")
        ax.set_xlabel("factors")
        ax.set_ylabel("seconds per iteration")
        ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=100)
    print(f"written {args.output}")


if __name__ == "__main__":
    main()
