"""The ``fastals`` command line: train, evaluate, recommend, similar, info.

Every failure caused by the input (a missing or malformed file, an unknown
id, a damaged model, a bad hyperparameter) ends with exit status 1 (2 for
command-line usage errors) and one ``Error: ...`` line on stderr, never a
traceback.  Ctrl-C during ``train`` stops after the current epoch, saves
that epoch's model when ``--output`` is given, and exits with status 130.
"""

import contextlib
import json
import math
import os
import signal
import sys
import time

import click
import numpy as np

from . import __version__
from ._cli_params import as_bad_parameter, model_options, pop_model_params
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


_FORMATS = click.Choice(["auto", "text", "mtx", "npz", "parquet"])
_UNKNOWN = click.Choice(["skip", "predict"])
_UNKNOWN_HELP = ("Held-out ratings whose user or item was not in training: "
                 "'skip' them (RMSE over known pairs) or 'predict' them from "
                 "the known side (global mean and biases).")


@main.command()
@click.option("--data", "data", metavar="PATH|NAME",
              help="Ratings file (also .gz, .bz2, .zip), unpacked MovieLens "
                   "folder, or ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, "
                   "ml-latest-small. Default: built-in synthetic "
                   "MovieLens-100k-shaped data.")
@click.option("--format", "fmt", type=_FORMATS, default="auto", show_default=True,
              help="Format of --data and --test (auto: by extension).")
@click.option("--columns", metavar="USER,ITEM[,RATING[,TIMESTAMP]]",
              help="Columns of --data and --test by header name or 0-based "
                   "position (default: by header name, else 0,1,2,3). 'none' "
                   "for RATING reads implicit feedback.")
@click.option("--test", "test", metavar="PATH",
              help="Held-out ratings: print the test RMSE (explicit, dense) "
                   "or ranking metrics at 10 (implicit).")
@click.option("--holdout", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              metavar="FRACTION",
              help="Hold out this fraction of --data (seeded by --seed), train "
                   "on the rest and print the test metrics.")
@click.option("--holdout-by", type=click.Choice(["random", "user"]), default="random",
              show_default=True,
              help="'random': a random fraction of all ratings; 'user': the "
                   "fraction of each user's ratings (each keeps one for training).")
@click.option("--unknown", type=_UNKNOWN, default="skip", show_default=True,
              help=_UNKNOWN_HELP)
@model_options
@click.option("--model", "model_kind", type=click.Choice(["als", "bayes"]),
              default="als", show_default=True,
              help="als: FastALS. bayes: BayesianALS (Gibbs sampling, nothing "
                   "to tune; explicit ratings; its own defaults: 12 factors, "
                   "100 iterations).")
@click.option("--burn-in", type=click.IntRange(min=0), default=None,
              help="--model bayes: sweeps not averaged.  [default: 5]")
@click.option("--implicit-feedback/--no-implicit-feedback", default=None,
              help="--model bayes: which items a user rated as information "
                   "(SVD++-style term, docs/bayesian.md).  [default: "
                   "implicit-feedback]")
@click.option("--ids", type=click.Choice(["auto", "observed", "range"]),
              default="auto", show_default=True,
              help="Integer ids as positions 1..max ('range'; auto when they "
                   "fill at least half the range) or only the observed ones.")
@click.option("--output", "-o", "output", metavar="PATH",
              help="Save the model here (atomically).")
@click.option("--log-every", type=click.IntRange(min=0), default=10,
              show_default=True,
              help="Print epochs 1, 1+N, 1+2N, ... and the last (0: none, and a "
                   "progress bar on a terminal).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: with --log-every 0 on a "
                   "terminal).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON record per logged epoch on stdout; messages go "
                   "to stderr.")
@click.option("--dask", "dask_address", metavar="ADDRESS",
              help="Train on a Dask cluster: a scheduler address "
                   "(tcp://host:8786), or local:N for N single-threaded local "
                   "worker processes (needs fastals[dask]; docs/distributed.md).")
def train(data, fmt, columns, test, holdout, holdout_by, unknown, ids, output,
          log_every, progress, quiet, as_json, model_kind, burn_in,
          implicit_feedback, dask_address, **model_kwargs):
    """Train a model and print the training loss as it falls.

    \b
    Every FastALS parameter is an option, with FastALS's default.
    The per-epoch line matches the original train.py:
      Iteration: 1, loss = 0.605044, time : 0.9794
    (loss: the objective's training error, see docs/cli.md; time: seconds
    since training began).  With --model bayes, one line per sweep:
      Sweep: 1, train rmse = 0.912345, noise sd = 0.9551, time : 0.0123
    (the training RMSE of the posterior mean so far, the sampled noise).
    """
    from . import data as fdata
    from ._input import resolve_duplicates
    from .model import FastALS
    from .model import save_model

    def say(msg):
        if not quiet:
            click.echo(msg, err=as_json)

    params = pop_model_params(model_kwargs)
    iterations = params["iterations"]
    seed = params["random_state"]
    stop = {"requested": False, "epoch": 0}
    test_eval = test_ratings = None

    def callback(epoch, loss, seconds):
        stop["epoch"] = epoch
        logged = log_every and ((epoch - 1) % log_every == 0 or epoch == iterations)
        if logged and not quiet:
            rec = {"epoch": epoch, "loss": loss, "time": round(seconds, 4)}
            line = f"Iteration: {epoch}, loss = {loss:.6f}, time : {seconds:.4f}"
            if test_eval is not None and test_eval.n_used \
                    and dask_address is None:
                rec["test_rmse"] = test_eval.rmse(model)
                line += f", test rmse = {rec['test_rmse']:.6f}"
            if as_json:
                click.echo(json.dumps(rec))
            else:
                click.echo(line)
        return stop["requested"]

    if model_kind == "bayes" and dask_address is not None:
        raise click.UsageError("--dask trains the ALS model only, not "
                               "--model bayes")
    if model_kind == "bayes":
        model, iterations = _bayes_model(
            params, 5 if burn_in is None else burn_in, stop, say, log_every,
            as_json, quiet, implicit_feedback is not False)
    elif burn_in is not None or implicit_feedback is not None:
        given = "--burn-in" if burn_in is not None else (
            "--implicit-feedback" if implicit_feedback else "--no-implicit-feedback")
        raise click.UsageError(f"{given} applies to --model bayes only")
    else:
        model = FastALS(callback=callback, **params)
    try:
        model._validated()  # bad hyperparameters fail before any data is read
    except FastALSError as exc:
        raise (as_bad_parameter(exc) or exc) from None
    if output is not None:
        _check_writable(output)
    if holdout is not None and test is not None:
        raise click.UsageError("--holdout and --test both give a test set; "
                               "use one")
    data_seed = 0 if seed is None else seed

    if data is None:
        from .data.synthetic import ML100K_SHAPE, make_ratings
        if columns is not None:
            raise click.UsageError("--columns needs --data")
        m, n, nnz = ML100K_SHAPE
        say(f"No --data given: training on built-in synthetic ratings shaped like "
            f"MovieLens-100k ({m} users x {n} items, {nnz:,} ratings, seed "
            f"{data_seed}).")
        ratings = make_ratings(m, n, nnz, seed=data_seed)
    else:
        ratings = _load(fdata, data, fmt, columns)
    if holdout is not None:
        ratings, test_ratings = _holdout(ratings, holdout, holdout_by, data_seed)
    policy = resolve_duplicates(model.duplicates, implicit=(
        model.objective == "implicit" or ratings.implicit))
    csr, user_ids, item_ids = ratings.to_csr(ids, duplicates=policy)
    if data is not None:
        say(_loaded_line(ratings, data, csr, policy, holdout, holdout_by))
        if ratings.implicit and model.objective != "implicit":
            click.echo(f"Warning: {data} has no rating column, so every value is "
                       f"1, which the {model.objective} objective fits trivially; "
                       "use --objective implicit (or --columns to name the "
                       "rating column)", err=True)

    if test is not None:
        test_ratings = _load(fdata, test, fmt, columns)
    if test_ratings is not None and model.objective != "implicit":
        test_eval = _TestSet(test_ratings, user_ids, item_ids, ratings.values,
                             unknown)
        if test_eval.n_used == 0:
            raise click.UsageError(f"{'--test ' + test if test else '--holdout'}: "
                                   "none of its ratings has a user and an item "
                                   "seen in training (--unknown predict to "
                                   "predict them anyway)")

    show_bar = progress if progress is not None else (
        not quiet and not log_every and not as_json and sys.stderr.isatty())

    def on_sigint(signum, frame):
        if stop["requested"]:  # second Ctrl-C: give up at once
            raise KeyboardInterrupt
        stop["requested"] = True
        click.echo("Interrupt: stopping after the current epoch "
                   "(Ctrl-C again to abort without saving).", err=True)

    old = _install_sigint(on_sigint)
    t0 = time.perf_counter()
    try:
        with _warnings_as_lines():
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
        say(f"Test RMSE: {test_eval.rmse(model):.6f} on {test_eval.n_used:,} "
            f"ratings{test_eval.unknown_note()}")
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


@contextlib.contextmanager
def _warnings_as_lines():
    """Warnings raised inside print as one ``Warning: ...`` line each (the
    message only, no source line), as the CLI prints its errors."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"Warning: {_one_line(message)}", err=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _load(fdata, source, fmt, columns):
    """Read a ratings source; plausibility warnings become ``Warning:`` lines."""
    import warnings

    from .exceptions import DataWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        ratings = fdata.load(source, format=fmt, columns=columns)
    for w in caught:
        if issubclass(w.category, DataWarning):
            click.echo(f"Warning: {_one_line(w.message)}", err=True)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return ratings


def _holdout(ratings, fraction, by, seed):
    """``(train, test)`` Ratings: a seeded random or per-user split."""
    from . import evaluation

    if by == "user":
        train_idx, test_idx = evaluation.user_fraction_split(
            ratings.user_ids, fraction, random_state=seed)
    else:
        train_idx, test_idx = evaluation.random_split(
            ratings.n_ratings, fraction, random_state=seed)
    if test_idx.size == 0:
        raise click.UsageError(f"--holdout {fraction}: no rating held out (too "
                               "few ratings); use a larger fraction")
    return ratings.take(train_idx), ratings.take(test_idx)


_POLICY_TEXT = {"sum": "summed", "mean": "averaged", "error": "refused"}


def _loaded_line(ratings, source, csr, policy, holdout, holdout_by):
    """``Loaded ...``: counts, the columns used, merged duplicates."""
    info = ratings.info
    line = f"Loaded {ratings.n_ratings:,} ratings from {source}"
    if holdout is not None:
        line += (f" (after holding out {holdout:g} "
                 f"{'of each user' if holdout_by == 'user' else 'at random'})")
    line += f": {csr.shape[0]:,} users x {csr.shape[1]:,} items"
    if info is not None:
        line += f"; {info.describe()}"
    merged = ratings.n_ratings - csr.nnz
    if merged > 0:
        if policy == "last":
            how = ("kept the latest by timestamp" if ratings.timestamps is not None
                   else "kept the last in file order")
        else:
            how = _POLICY_TEXT[policy]
        line += (f"; {merged:,} repeated (user, item) rating(s) merged ({how}; "
                 "--duplicates to change)")
    return line + "."


#: FastALS parameters that --model bayes takes too; giving any other is an error.
_BAYES_PARAMS = ("factors", "iterations", "dtype", "random_state", "num_threads",
                 "calculate_training_loss", "duplicates")


def _bayes_model(params, burn_in, stop, say, log_every, as_json, quiet,
                 implicit_feedback=True):
    """``(BayesianALS, iterations)`` for ``train --model bayes``, with its
    per-sweep log line.  Options left at their defaults take BayesianALS's
    defaults; ALS-only options given are refused."""
    from ._cli_params import cli_names
    from .bayes import BayesianALS

    source = click.get_current_context().get_parameter_source
    default = click.core.ParameterSource.DEFAULT
    given = [cli_names(p)[0] for p in params
             if p not in _BAYES_PARAMS and source(p) not in (None, default)]
    if given:
        raise click.UsageError(f"{', '.join(given)}: not an option of --model "
                               "bayes (it samples its regularization)")
    defaults = BayesianALS()
    kwargs = {p: params[p] if source(p) not in (None, default) or p in
              ("random_state", "num_threads", "dtype", "duplicates")
              else getattr(defaults, p) for p in _BAYES_PARAMS}
    iterations = kwargs["iterations"]

    def callback(sweep, rmse, seconds):
        stop["epoch"] = sweep
        if not quiet and log_every and ((sweep - 1) % log_every == 0
                                        or sweep == iterations):
            noise = model.noise_history[-1]
            if as_json:
                click.echo(json.dumps({"sweep": sweep, "train_rmse": rmse,
                                       "noise_sd": noise, "time": round(seconds, 4)}))
            else:
                say(f"Sweep: {sweep}, train rmse = {rmse:.6f}, noise sd = "
                    f"{noise:.4f}, time : {seconds:.4f}")
        return stop["requested"]

    model = BayesianALS(burn_in=burn_in, callback=callback,
                        implicit_feedback=implicit_feedback, **kwargs)
    return model, iterations


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
    """Held-out ratings mapped to the model's rows once; one unknown-id
    policy (``skip`` or ``predict``) for ``train --test`` and ``evaluate``."""

    def __init__(self, ratings, user_ids, item_ids, train_values, unknown="skip"):
        self.n = ratings.n_ratings
        self.unknown = unknown
        rows = _positions(user_ids, ratings.user_ids)
        cols = _positions(item_ids, ratings.item_ids)
        known = (rows >= 0) & (cols >= 0)
        self.n_unknown = int((~known).sum())
        keep = known if unknown == "skip" else np.ones(self.n, bool)
        self.rows, self.cols = rows[keep], cols[keep]
        self.values = ratings.values[keep]
        self.n_used = int(keep.sum())
        self.lo, self.hi = float(np.min(train_values)), float(np.max(train_values))

    def predictions(self, model):
        """Clipped predictions from the current factors (an unknown user or
        item contributes no factors and no bias)."""
        r, c = self.rows, self.cols
        ku, ki = r >= 0, c >= 0
        both = ku & ki
        pred = np.zeros(r.size)
        U = model.user_factors[r[both]].astype(np.float64)
        V = model.item_factors[c[both]].astype(np.float64)
        pred[both] = np.einsum("ij,ij->i", U, V)
        if model.use_bias:
            pred += model.global_mean
            pred[ku] += model.user_biases[r[ku]]
            pred[ki] += model.item_biases[c[ki]]
        return np.clip(pred, self.lo, self.hi)

    def rmse(self, model):
        """RMSE of the clipped predictions from the current factors."""
        return float(np.sqrt(np.mean((self.predictions(model) - self.values) ** 2)))

    def mae(self, model):
        return float(np.mean(np.abs(self.predictions(model) - self.values)))

    def unknown_note(self):
        """`` (N skipped: ...)`` / `` (N predicted ...)``, or empty."""
        if not self.n_unknown:
            return ""
        if self.unknown == "skip":
            return (f" ({self.n_unknown:,} skipped: user or item not in training; "
                    "--unknown predict to include them)")
        return (f" ({self.n_unknown:,} predicted from the known side: user or "
                "item not in training)")


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
@click.option("--format", "fmt", type=_FORMATS, default="auto", show_default=True,
              help="Format of --data.")
@click.option("--columns", metavar="USER,ITEM[,RATING[,TIMESTAMP]]",
              help="Columns of --data by header name or 0-based position.")
@click.option("--unknown", type=_UNKNOWN, default="skip", show_default=True,
              help=_UNKNOWN_HELP)
@click.option("-k", "--k", "k", type=click.IntRange(min=1), default=10,
              show_default=True, help="Cut-off of the ranking metrics.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(model_path, data, fmt, columns, unknown, k, as_json):
    """Error and ranking metrics of MODEL on held-out ratings.

    RMSE and MAE of the predicted ratings (clipped to the training range;
    ratings of users or items unseen in training are skipped or predicted
    from the known side, per --unknown, as in 'train --test'), plus
    precision, recall, MAP and NDCG at K of the recommendations (training
    items excluded) against the held-out items of each known user.
    """
    from . import data as fdata
    from . import evaluation
    from .model import load_model

    model = load_model(model_path)
    test = _load(fdata, data, fmt, columns)
    train = getattr(model, "_user_items", None)
    if model.user_ids is None or model.item_ids is None:
        n_u, n_i = model.user_factors.shape[0], model.item_factors.shape[0]
        uids = model.user_ids if model.user_ids is not None else np.arange(n_u)
        iids = model.item_ids if model.item_ids is not None else np.arange(n_i)
    else:
        uids, iids = model.user_ids, model.item_ids
    span = train.data if train is not None and train.nnz else test.values
    ts = _TestSet(test, uids, iids, span, unknown)
    out = {"model": model_path, "data": data, "n": ts.n, "n_used": ts.n_used,
           "n_unknown": ts.n_unknown, "unknown": unknown}
    if ts.n_used:
        out["rmse"] = ts.rmse(model)
        out["mae"] = ts.mae(model)
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
    click.echo(f"Model {model_path} on {data}: {ts.n_used:,} ratings"
               + ts.unknown_note())
    for key, value in out.items():
        if key in ("model", "data", "n", "n_unknown", "n_used", "unknown"):
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
    train = getattr(model, "_user_items", None)
    filt = not include_seen and train is not None
    if train is not None and not model.use_bias:
        row = int(model._index_of("user", np.array([uid])).ravel()[0])
        if train.indptr[row + 1] == train.indptr[row]:
            raise FastALSError(f"user {uid!r} has no ratings in training, so every "
                               "item scores the same for them; train with "
                               "--use-bias for a popularity fallback")
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
