"""The ``fastals`` command line: train, evaluate, recommend, similar, info.

Every failure caused by the input (a missing or malformed file, an unknown
id, a damaged model, a bad hyperparameter) ends with exit status 1 (2 for
command-line usage errors) and one ``Error: ...`` line on stderr, never a
traceback.  Ctrl-C during ``train`` stops after the current epoch, saves
that epoch's model when ``--output`` is given, and exits with status 130.
"""

import json
import math
import os
import signal
import sys
import time

import click
import numpy as np

from . import __version__
from .exceptions import FastALSError

EXIT_INTERRUPTED = 130
# click >= 8.2 raises this for a bare ``fastals``; older versions print help.
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


def _one_line(msg):
    return " ".join(str(msg).split())


def _error(msg, code=1):
    click.echo(f"Error: {_one_line(msg)}", err=True)
    return code


class _Group(click.Group):
    """Runs the commands and turns every expected failure into one line."""

    def main(self, args=None, prog_name=None, complete_var=None,
             standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name or "fastals", complete_var, False,
                              **extra)
        except click.exceptions.Exit as exc:  # pragma: no cover - click API
            sys.exit(exc.exit_code)
        except _NoArgsIsHelp as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            hint = ""
            if exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            sys.exit(_error(exc.format_message() + hint, exc.exit_code))
        except click.ClickException as exc:
            sys.exit(_error(exc.format_message(), exc.exit_code))
        except (click.Abort, KeyboardInterrupt):
            click.echo("Aborted.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except (FastALSError, ValueError, OSError, MemoryError) as exc:
            sys.exit(_error(exc))
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="fastals")
def main():
    """Fast alternating least squares for rating matrices.

    Train a model on a ratings file (or a MovieLens set, or the built-in
    synthetic data), save it, and query it for recommendations.
    """


# ---------------------------------------------------------------------- train
_OBJECTIVES = click.Choice(["explicit", "implicit", "dense"])


@main.command()
@click.option("--data", "data", metavar="PATH|NAME",
              help="Ratings file, unpacked MovieLens folder, or ml-100k, ml-1m, "
                   "ml-10m, ml-20m, ml-25m, ml-latest-small. Default: built-in "
                   "synthetic MovieLens-100k-shaped data.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "mtx", "npz",
                                                    "parquet"]),
              default="auto", show_default=True,
              help="Format of --data and --test (auto: by extension).")
@click.option("--test", "test", metavar="PATH",
              help="Held-out ratings: print the test RMSE (explicit, dense) "
                   "or ranking metrics at 10 (implicit).")
@click.option("--objective", type=_OBJECTIVES, default="explicit",
              show_default=True)
@click.option("--factors", "--factor", "factors", type=click.IntRange(min=1),
              default=10, show_default=True, help="Latent factors.")
@click.option("--iterations", "--epochs", "iterations",
              type=click.IntRange(min=0), default=15, show_default=True,
              help="ALS epochs.")
@click.option("--regularization", "--lambda_param", "--lambda", "regularization",
              type=click.FloatRange(min=0), default=0.01, show_default=True)
@click.option("--alpha", type=click.FloatRange(min=0), default=1.0,
              show_default=True, help="Implicit confidence scale.")
@click.option("--use-bias/--no-bias", default=False, show_default=True,
              help="Global mean and user/item biases (explicit).")
@click.option("--solver", type=click.Choice(["cholesky", "cg"]),
              default="cholesky", show_default=True)
@click.option("--weighted-regularization/--plain-regularization", default=False,
              show_default=True, help="ALS-WR: scale lambda by rating counts.")
@click.option("--dtype", type=click.Choice(["float32", "float64"]),
              default="float32", show_default=True)
@click.option("--threads", type=click.IntRange(min=0), default=0,
              show_default=True, help="Numba threads (0: all cores).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the initial factors and of the synthetic data.")
@click.option("--ids", type=click.Choice(["auto", "observed", "range"]),
              default="auto", show_default=True,
              help="Integer ids as positions 1..max ('range'; auto when they "
                   "fill at least half the range) or only the observed ones.")
@click.option("--output", "-o", "output", metavar="PATH",
              help="Save the model here (atomically).")
@click.option("--log-every", type=click.IntRange(min=0), default=10,
              show_default=True,
              help="Print epochs 1, 1+N, 1+2N, ... and the last (0: none).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per logged epoch on stdout; messages go "
                   "to stderr.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Train on a Dask cluster: a scheduler address "
                   "(tcp://host:8786), or local:N for N single-threaded local "
                   "worker processes (needs fastals[dask]; docs/distributed.md).")
def train(data, fmt, test, objective, factors, iterations, regularization, alpha,
          use_bias, solver, weighted_regularization, dtype, threads, seed, ids,
          output, log_every, quiet, as_json, dask_address):
    """Train a model and print the training loss as it falls.

    \b
    The per-epoch line matches the original train.py:
      Iteration: 1, loss = 0.605044, time : 0.9794
    (loss: the objective's training error, see docs/cli.md; time: seconds
    since training began).
    """
    from . import data as fdata
    from .model import FastALS
    from .model import save_model

    def say(msg):
        if not quiet:
            click.echo(msg, err=as_json)

    stop = {"requested": False, "epoch": 0}
    test_eval = test_ratings = None

    def callback(epoch, loss, seconds):
        stop["epoch"] = epoch
        logged = log_every and ((epoch - 1) % log_every == 0 or epoch == iterations)
        if logged and not quiet:
            rec = {"epoch": epoch, "loss": loss, "time": round(seconds, 4)}
            line = f"Iteration: {epoch}, loss = {loss:.6f}, time : {seconds:.4f}"
            if test_eval is not None and dask_address is None:
                rec["test_rmse"] = test_eval.rmse(model)
                line += f", test rmse = {rec['test_rmse']:.6f}"
            if as_json:
                click.echo(json.dumps(rec))
            else:
                click.echo(line)
        return stop["requested"]

    model = FastALS(factors=factors, regularization=regularization, alpha=alpha,
                    iterations=iterations, objective=objective, use_bias=use_bias,
                    solver=solver, weighted_regularization=weighted_regularization,
                    dtype=dtype, random_state=seed, num_threads=threads,
                    callback=callback)
    model._validated()  # bad hyperparameters fail before any data is read
    if output is not None:
        _check_writable(output)

    if data is None:
        from .synthetic import ML100K_SHAPE, make_ratings
        m, n, nnz = ML100K_SHAPE
        say(f"No --data given: training on built-in synthetic ratings shaped like "
            f"MovieLens-100k ({m} users x {n} items, {nnz:,} ratings, seed "
            f"{seed}).")
        ratings = make_ratings(m, n, nnz, seed=seed)
        source = "synthetic"
    else:
        ratings = fdata.load(data, format=fmt)
        source = data
    csr, user_ids, item_ids = ratings.to_csr(ids)
    if data is not None:
        say(f"Loaded {ratings.n_ratings:,} ratings from {source}: "
            f"{csr.shape[0]:,} users x {csr.shape[1]:,} items.")

    if test is not None:
        test_ratings = fdata.load(test, format=fmt)
    if test_ratings is not None and objective != "implicit":
        test_eval = _TestSet(test_ratings, user_ids, item_ids, ratings.values,
                             objective)
        if test_eval.n_known == 0:
            raise click.UsageError(f"--test {test}: none of its ratings has a user "
                                   "and an item seen in training")

    show_bar = (not quiet and not log_every and not as_json
                and sys.stderr.isatty())

    def on_sigint(signum, frame):
        if stop["requested"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop["requested"] = True
        click.echo("Interrupt: stopping after the current epoch "
                   "(Ctrl-C again to abort without saving).", err=True)

    old = _install_sigint(on_sigint)
    t0 = time.perf_counter()
    try:
        if dask_address is None:
            model.fit(csr, show_progress=show_bar)
        else:  # per-epoch test RMSE would gather the factors every epoch
            from .distributed import connect
            with connect(dask_address) as client:
                model.fit(csr, show_progress=show_bar, client=client)
    finally:
        _restore_sigint(old)
    seconds = time.perf_counter() - t0
    model.user_ids, model.item_ids = user_ids, item_ids
    epochs = len(model.loss_history)

    if test_eval is not None and not quiet:
        r = test_eval.rmse(model)
        skipped = test_eval.n - test_eval.n_known
        say(f"Test RMSE: {r:.6f} on {test_eval.n_known:,} ratings"
            + (f" ({skipped:,} skipped: user or item not in training)"
               if skipped else ""))
    if test_ratings is not None and test_eval is None and not quiet:
        from . import evaluation
        truth = evaluation.user_items_matrix(model, test_ratings.user_ids,
                                             test_ratings.item_ids)
        if truth.nnz:
            r = evaluation.ranking_metrics_at_k(model, model._user_items, truth, K=10)
            say(f"Test ranking over {r['users']:,} users: precision@10 "
                f"{r['precision']:.4f}, recall@10 {r['recall']:.4f}, map@10 "
                f"{r['map']:.4f}, ndcg@10 {r['ndcg']:.4f}, auc {r['auc']:.4f}")
    if output is not None:
        save_model(model, output)
    if stop["requested"]:
        where = f"; saved the model of epoch {epochs} to {output}" if output else \
            " (no --output: nothing saved)"
        click.echo(f"Interrupted after epoch {epochs}{where}.", err=True)
        return EXIT_INTERRUPTED
    say(f"Trained {epochs} epochs in {seconds:.2f} s"
        + (f"; model saved to {output}" if output else "") + ".")
    return 0


def _install_sigint(handler):
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. some test runners)
        return None


def _restore_sigint(old):
    if old is not None:
        signal.signal(signal.SIGINT, old)


def _check_writable(path):
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise click.UsageError(f"--output {path}: folder {folder} does not exist")
    if os.path.isdir(path):
        raise click.UsageError(f"--output {path}: is a folder")
    if not os.access(folder, os.W_OK):
        raise click.UsageError(f"--output {path}: folder {folder} is not writable")


class _TestSet:
    """Held-out ratings mapped to the model's rows once."""

    def __init__(self, ratings, user_ids, item_ids, train_values, objective):
        self.n = ratings.n_ratings
        self.objective = objective
        self.rows = _positions(user_ids, ratings.user_ids)
        self.cols = _positions(item_ids, ratings.item_ids)
        keep = (self.rows >= 0) & (self.cols >= 0)
        self.rows, self.cols = self.rows[keep], self.cols[keep]
        self.values = ratings.values[keep]
        self.n_known = int(keep.sum())
        self.lo, self.hi = float(train_values.min()), float(train_values.max())

    def rmse(self, model):
        """RMSE of the clipped predictions from the current factors."""
        U = model.user_factors[self.rows].astype(np.float64)
        V = model.item_factors[self.cols].astype(np.float64)
        pred = np.einsum("ij,ij->i", U, V)
        if model.use_bias:
            pred += (model.global_mean + model.user_biases[self.rows]
                     + model.item_biases[self.cols])
        if self.objective != "implicit":
            np.clip(pred, self.lo, self.hi, out=pred)
        return float(np.sqrt(np.mean((pred - self.values) ** 2)))


def _positions(known, raw):
    """Row of each raw id in ``known`` (sorted unique ids), -1 if absent."""
    known = np.asarray(known)
    raw = np.asarray(raw)
    if known.dtype.kind in "iu" and raw.dtype.kind not in "iu":
        return np.full(raw.size, -1, np.int64)
    if known.dtype.kind == "U" and raw.dtype.kind != "U":
        raw = raw.astype(str)
    order = np.argsort(known, kind="stable")
    sk = known[order]
    pos = np.minimum(np.searchsorted(sk, raw), sk.size - 1)
    hit = sk[pos] == raw
    return np.where(hit, order[pos], -1).astype(np.int64)


# ----------------------------------------------------------------- evaluate
@main.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--data", "data", required=True, metavar="PATH",
              help="Held-out ratings file.")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "mtx", "npz",
                                                    "parquet"]),
              default="auto", show_default=True, help="Format of --data.")
@click.option("-k", "--k", "k", type=click.IntRange(min=1), default=10,
              show_default=True, help="Cut-off of the ranking metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model_path, data, fmt, k, as_json):
    """Error and ranking metrics of MODEL on held-out ratings.

    RMSE and MAE of the predicted ratings (users or items unseen in training
    are predicted from the known parts), plus precision, recall, MAP and
    NDCG at K of the recommendations (training items excluded) against the
    held-out items of each known user.
    """
    from . import data as fdata
    from . import evaluation
    from .model import load_model

    model = load_model(model_path)
    test = fdata.load(data, format=fmt)
    out = {"model": model_path, "data": data}
    out.update(evaluation.evaluate_ratings(model, test.user_ids, test.item_ids,
                                           test.values, unknown="default"))
    train = getattr(model, "_user_items", None)
    if train is not None:
        truth = evaluation.user_items_matrix(model, test.user_ids, test.item_ids)
        if truth.nnz:
            ranking = evaluation.ranking_metrics_at_k(model, train, truth, K=k)
            for key, value in ranking.items():
                name = f"{key}@{k}" if key in ("precision", "recall", "map",
                                               "ndcg") else key
                out[name if key != "users" else "ranked_users"] = value
    if as_json:
        click.echo(json.dumps(out))
        return 0
    click.echo(f"Model {model_path} on {data}: {out['n']:,} ratings"
               + (f" ({out['n_unknown']:,} with a user or item unseen in training)"
                  if out.get("n_unknown") else ""))
    for key, value in out.items():
        if key in ("model", "data", "n", "n_unknown"):
            continue
        shown = f"{value:.6f}" if isinstance(value, float) else str(value)
        click.echo(f"  {key:<14} {shown}")
    return 0


# ---------------------------------------------------------------- recommend
def _parse_id(model, side, text):
    """A raw id typed on the command line, in the type of the model's ids."""
    ids = model.user_ids if side == "user" else model.item_ids
    if ids is None or ids.dtype.kind in "iu":
        try:
            return int(text)
        except ValueError:
            raise FastALSError(f"unknown {side} id {text!r}: this model's {side} "
                               "ids are integers") from None
    return str(text)


@main.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--user", "user", required=True, metavar="ID", help="Raw user id.")
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--include-seen", is_flag=True,
              help="Also rank items the user rated in training.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def recommend(model_path, user, n, include_seen, as_json):
    """Top-N items for one user of MODEL (raw ids in and out)."""
    from .model import load_model

    model = load_model(model_path)
    uid = _parse_id(model, "user", user)
    filt = not include_seen and getattr(model, "_user_items", None) is not None
    items, scores = model.recommend(uid, n=n, filter_already_liked_items=filt)
    _print_ranked("item", items, scores, as_json, {"user": uid})
    return 0


@main.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--item", "item", required=True, metavar="ID", help="Raw item id.")
@click.option("-n", "n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def similar(model_path, item, n, as_json):
    """The N items most similar to ID (cosine of the item factors)."""
    from .model import load_model

    model = load_model(model_path)
    iid = _parse_id(model, "item", item)
    items, scores = model.similar_items(iid, n=n)
    _print_ranked("item", items, scores, as_json, {"item": iid})
    return 0


def _print_ranked(what, ids, scores, as_json, query):
    ids = [x.item() if isinstance(x, np.generic) else x for x in np.asarray(ids)]
    scores = [float(s) for s in np.asarray(scores)]
    if as_json:
        click.echo(json.dumps({**query, "results": [
            {what: i, "score": s} for i, s in zip(ids, scores)]}))
        return
    click.echo(f"rank\t{what}\tscore")
    for rank, (i, s) in enumerate(zip(ids, scores), 1):
        click.echo(f"{rank}\t{i}\t{s:.6f}")


# -------------------------------------------------------------------- bench
@main.command()
@click.option("--factors", default="16,32,64,128", show_default=True,
              metavar="K1,K2,...", help="Comma-separated numbers of factors.")
@click.option("--users", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--items", type=click.IntRange(min=1), default=5_000, show_default=True)
@click.option("--ratings", "--interactions", "ratings", type=click.IntRange(min=1),
              default=1_000_000, show_default=True, help="Distinct (user, item) pairs.")
@click.option("--objective", type=_OBJECTIVES, default="implicit", show_default=True)
@click.option("--solver", type=click.Choice(["cholesky", "cg"]), default="cholesky",
              show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed iterations per number of factors (median reported).")
@click.option("--threads", type=click.IntRange(min=0), default=0, show_default=True,
              help="Numba threads (0 = all cores).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", metavar="PNG", default=None,
              help="Also write seconds per iteration against factors as a PNG "
                   "(needs matplotlib: pip install 'fastals[plot]').")
def bench(factors, users, items, ratings, objective, solver, iterations, threads,
          seed, plot):
    """Time ALS iterations against the number of factors on synthetic data."""
    from .benchmark import run_benchmark

    try:
        ks = [int(x) for x in factors.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"expected integers like 16,64, got {factors!r}",
                                 param_hint="--factors")
    if not ks or min(ks) < 1:
        raise click.BadParameter("factors must be positive integers", param_hint="--factors")
    if objective == "dense" and solver == "cg":
        raise click.BadParameter("the dense objective has no CG solver", param_hint="--solver")
    run_benchmark(factors=ks, n_users=users, n_items=items, n_ratings=ratings,
                  objective=objective, solver=solver, iterations=iterations,
                  threads=threads, seed=seed, plot=plot, echo=click.echo)
    return 0


# --------------------------------------------------------------------- info
@main.command()
@click.argument("model_path", metavar="MODEL")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(model_path, as_json):
    """Hyperparameters, shapes and training loss of MODEL."""
    from .model import load_model
    from .persist import FORMAT_VERSION

    model = load_model(model_path)
    params = {k: v for k, v in model.get_params().items() if k != "callback"}
    params["dtype"] = np.dtype(params["dtype"]).name
    losses = list(model.loss_history)
    out = {
        "file": model_path,
        "bytes": os.path.getsize(model_path),
        "format_version": FORMAT_VERSION,
        "users": int(model.user_factors.shape[0]),
        "items": int(model.item_factors.shape[0]),
        "factors": int(model.user_factors.shape[1]),
        "epochs": len(losses),
        "final_loss": losses[-1] if losses else None,
        "training_ratings": (int(model._user_items.nnz)
                             if getattr(model, "_user_items", None) is not None
                             else None),
        "params": params,
    }
    if as_json:
        click.echo(json.dumps(out))
        return 0
    for key, value in out.items():
        if key == "params":
            continue
        if isinstance(value, float):
            value = f"{value:.6f}" if math.isfinite(value) else str(value)
        click.echo(f"{key:<17} {value}")
    click.echo("params            " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
