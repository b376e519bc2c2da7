"""``betaprop info``, ``predict`` and ``evaluate``: using a model file, and the metrics that
``train`` reports too (``info``'s tables: cli/info.py)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..engine.network import Network
from ..files.datasets import Dataset, load_data
from ..files.model import ModelFile, ModelFileError, atomic_write, read_model
from ..files.preprocessing import Preprocessing
from ..training.loop import evaluate
from .options import UserError, refuse_overwriting, rich_console, separator

__all__ = [
    "add_commands",
    "open_model",
    "require_prep",
    "model_data",
    "metrics",
    "cell",
    "write_text",
]


SEP_HELP = "separator of a CSV file, one character or 'tab' (default ',', tab for .tsv)"


def add_locale_options(parser: Any) -> None:
    """--sep, --decimal, --thousands and --na-values: how a file writes its cells."""
    parser.add_argument("--sep", type=separator, help=SEP_HELP)
    parser.add_argument(
        "--decimal", type=_mark, default=".", help="decimal mark of numbers, e.g. ',' (default '.')"
    )
    parser.add_argument(
        "--thousands", type=_mark, help="thousands separator of numbers, e.g. ',' or '.'"
    )
    parser.add_argument(
        "--na-values",
        metavar="CELLS",
        help="more cells that mean a missing value, comma-separated (e.g. unknown,-999); "
        "always: empty, NA, N/A, NaN, null, None, ?, -",
    )


def _mark(text: str) -> str:
    """--decimal, --thousands: one character that is no digit, sign or quote."""
    if len(text) != 1 or text.isdigit() or text in "+-\"'\n\r":
        raise argparse.ArgumentTypeError(f"must be one character such as ',' or '.', got {text!r}")
    return text


def locale_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``load_data`` for --sep, --decimal, --thousands, --na-values."""
    decimal, thousands = getattr(args, "decimal", "."), getattr(args, "thousands", None)
    if thousands is not None and thousands == decimal:
        raise UserError(f"--thousands and --decimal must differ, got {decimal!r} for both")
    na_values = getattr(args, "na_values", None)
    return {
        "sep": getattr(args, "sep", None),  # one character: the option type ``separator``
        "decimal": decimal,
        "thousands": thousands,
        "na_values": [c.strip() for c in na_values.split(",")] if na_values else (),
    }


def print_notes(data: Dataset | list[str]) -> None:
    """What reading did to the table (rows without a target, dates as numbers), on stderr:
    a dataset's notes, or the notes themselves."""
    for note in data if isinstance(data, list) else data.notes:
        print(f"betaprop: note: {note}", file=sys.stderr)


def add_commands(commands: Any) -> None:
    """The subcommands info, predict and evaluate."""
    from .info import cmd_info  # (it opens the model with this module's open_model)

    info = commands.add_parser("info", help="describe a model file")
    info.add_argument("model")
    info.set_defaults(handler=cmd_info)

    predict = commands.add_parser("predict", help="predict with a model file")
    predict.add_argument("model")
    predict.add_argument(
        "data", help="CSV or Parquet file (or bundled dataset, or - for stdin) with the features"
    )
    predict.add_argument("--proba", action="store_true", help="also write class probabilities")
    predict.add_argument("--out", help="write the predictions to this CSV file")
    add_locale_options(predict)
    predict.add_argument(
        "--unknown",
        choices=("ignore", "error"),
        help="a category that training did not see: all-zero one-hot (ignore, the default "
        "saved by train) or refuse (error)",
    )
    predict.set_defaults(handler=_cmd_predict)

    evaluate_ = commands.add_parser("evaluate", help="metrics of a model file on labelled data")
    evaluate_.add_argument("model")
    evaluate_.add_argument("data")
    evaluate_.add_argument("--target", help="target column (default: the model's)")
    add_locale_options(evaluate_)
    evaluate_.add_argument("--unknown", choices=("ignore", "error"))
    evaluate_.set_defaults(handler=_cmd_evaluate)


# ----------------------------------------------------------------------------- shared
def add_table_options(parser: Any) -> None:
    """--sep, --decimal, --thousands, --na-values, --categorical, --impute, --indicator and
    --drop of ``train``."""
    from ..files.preprocessing import IMPUTE

    add_locale_options(parser)
    parser.add_argument(
        "--categorical",
        metavar="COLS",
        help="more columns to one-hot encode, comma-separated, besides every column whose "
        "cells are text or booleans (numbers such as codes 1,2,3)",
    )
    parser.add_argument(
        "--impute",
        choices=(*IMPUTE, "none"),
        help="fill missing values (scikit-learn's SimpleImputer strategy for numeric columns; "
        "categories take the most frequent); default: median for a table with text or gaps, "
        "saved in the model so that predict fills gaps alike; none: refuse gaps",
    )
    parser.add_argument(
        "--indicator", action="store_true", help="with --impute: add a 0/1 column per gap column"
    )
    parser.add_argument("--drop", metavar="COLS", help="columns to leave out, comma-separated")


def table_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``load_data`` that the table options ask for."""
    if getattr(args, "indicator", False) and getattr(args, "impute", None) == "none":
        raise UserError("--indicator needs imputation: leave out --impute none")
    categorical = getattr(args, "categorical", None)
    return {
        **locale_options(args),
        "categorical": [c.strip() for c in categorical.split(",")] if categorical else "auto",
        "drop": [c.strip() for c in args.drop.split(",")] if getattr(args, "drop", None) else (),
        "allow_missing": getattr(args, "impute", None) != "none",
    }


def impute_strategy(args: argparse.Namespace, data: Dataset) -> str | None:
    """--impute as ``Preprocessing.fit`` takes it: None for none; by default median for a
    table that needs encoding (text categories or gaps), None for a table of numbers only."""
    impute = getattr(args, "impute", None)
    if impute == "none":
        return None
    if impute is None:
        return "median" if data.frame is not None else None
    return str(impute)


def model_inputs(net: Network, prep: Preprocessing, data: Dataset, args: Any) -> np.ndarray:
    """The standardised inputs of the model for ``data`` (encoded first), checked finite; a
    note on stderr for categories that training did not see."""
    if getattr(args, "unknown", None):
        prep.unknown = args.unknown
    Z = prep.transform(prep.columns_of(data), net.dtype)
    unseen_notes(prep)
    if not np.isfinite(Z).all():
        row, j = (int(k) for k in np.argwhere(~np.isfinite(Z))[0])
        value = float(prep.columns_of(data)[row, j])
        raise UserError(
            f"{data.source} row {row + 1}, column {prep.feature_names[j]!r}: {value!r} is too "
            f"large for the model's scaling (standardised, it overflows {net.dtype})"
        )
    return Z


def unseen_notes(prep: Preprocessing) -> None:
    """A note on stderr per column with categories that training did not see."""
    for name, values in prep.unseen.items():
        print(
            f"betaprop: note: column {name!r} has categories training did not see "
            f"({', '.join(values[:5])}{f', ... {len(values)} in all' if len(values) > 5 else ''})"
            ": encoded as all zeros (--unknown error refuses them)",
            file=sys.stderr,
        )


def minority_warning(scores: dict[str, dict[str, float]]) -> None:
    """A warning on stderr when accuracy hides a class the model misses: macro F1 (the mean
    of the classes' F1) more than 0.2 below accuracy on some split."""
    for split, values in scores.items():
        accuracy, f1 = values.get("accuracy"), values.get("f1_macro")
        if accuracy is not None and f1 is not None and f1 < accuracy - 0.2:
            print(
                f"betaprop: warning: on the {split} rows accuracy is {accuracy:.3g} but macro F1 "
                f"only {f1:.3g}: a class is rare and mostly missed; --class-weight balanced "
                "weighs the classes equally",
                file=sys.stderr,
            )
            return


def finite_outputs(P: np.ndarray, path: str) -> np.ndarray:
    """The network's outputs, refused if any is not finite (weights of a crafted file)."""
    if not np.isfinite(P).all():
        raise ModelFileError(
            f"{path}: the network's outputs are not finite (its weights overflow {P.dtype})"
        )
    return P


def open_model(path: str) -> tuple[ModelFile, Preprocessing | None]:
    """A model file and its preprocessing (None if it was saved without one)."""
    model = read_model(path)
    fields = model.metadata.get("preprocessing")
    if fields is None:
        return model, None
    try:
        prep = Preprocessing.from_dict(fields)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    try:
        prep.check_network(model.network.sizes)
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return model, prep


def require_prep(path: str, prep: Preprocessing | None) -> Preprocessing:
    if prep is None:
        raise UserError(
            f"{path} holds no preprocessing (saved from Python without it): use "
            "betaprop.load and net.predict on already scaled features"
        )
    return prep


def model_data(
    path: str,
    prep: Preprocessing,
    data_spec: str,
    target: str | None,
    sep: str | None = None,
    dtype: str = "float64",
    options: dict[str, Any] | None = None,
) -> Dataset:
    """The model's feature columns of a data file, and the ``target`` column unless None
    (then a target column in the file is ignored, even with empty cells); numbers read in
    ``dtype`` (the network's, as ``train`` read them); each column of the kind the model
    gave it; ``options``: ``locale_options``. The notes of reading are printed."""
    data = load_data(
        data_spec,
        target,
        require_target=target is not None,
        features=prep.columns if prep.columns is not None else prep.feature_names,
        categorical=list(prep.categories) if prep.columns is not None else "auto",
        detect=prep.columns is None,
        allow_missing=bool(prep.fill),
        dtype=dtype,
        gaps=f"{path} imputes no gaps (trained with --impute none, or on numbers without "
        "gaps): fill them in, or train again with --impute median",
        **{"sep": sep, **(options or {})},
    )
    print_notes(data)
    return data


METRICS_CELLS = 2**22  # targets or outputs per chunk of rows in metrics: 32 MiB in float64


def metrics(net: Network, prep: Preprocessing, data: Dataset, rows: np.ndarray) -> dict[str, float]:
    """Loss and scores on some rows: accuracy and macro F1, or R², MAE and RMSE."""
    from sklearn import metrics as sklearn_metrics

    # rows in chunks of at most METRICS_CELLS inputs, targets and outputs each: a one-hot
    # target of 10 000 classes is 10 000 numbers a row, and the standardised inputs of a
    # split are another copy of it, never held for every row at once
    step = max(1, METRICS_CELLS // max(net.sizes[0], net.sizes[-1]))
    total, predicted = 0.0, list[Any]()
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        Z = prep.transform(data.X[part], net.dtype)
        D = prep.encode(data.target[part], net.sizes[-1], net.dtype)
        loss, _ = evaluate(net, Z, D)
        total += float(loss) * len(part)
        predicted.extend(prep.decode(net.predict(Z)))
    result = {"loss": total / len(rows)}
    if prep.task == "classification":
        truth = prep.labels(data.target[rows])
        result["accuracy"] = float(sklearn_metrics.accuracy_score(truth, predicted))
        result["f1_macro"] = float(
            sklearn_metrics.f1_score(truth, predicted, average="macro", zero_division=0)
        )
    else:
        truth_values = np.array([float(v) for v in data.target[rows]])  # in its own units
        values = np.asarray(predicted, dtype=np.float64)
        result["r2"] = (
            float(sklearn_metrics.r2_score(truth_values, values)) if len(rows) > 1 else math.nan
        )
        result["mae"] = float(sklearn_metrics.mean_absolute_error(truth_values, values))
        result["rmse"] = float(np.sqrt(sklearn_metrics.mean_squared_error(truth_values, values)))
    return result


def cell(value: Any) -> str:
    """A value as a CSV cell: floats in full (repr), None as empty."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if value is None:
        return ""
    return str(value)


# ----------------------------------------------------------------------------- commands
def _cmd_predict(args: argparse.Namespace) -> int:
    refuse_overwriting(
        [("--out", args.out)], [("the model file", args.model), ("the data file", args.data)]
    )
    model, prep = open_model(args.model)
    prep = require_prep(args.model, prep)
    net = model.network
    if args.proba and prep.task != "classification":
        raise UserError("--proba is for classification models; this model does regression")
    with from_pipe(args.data) as spec:
        data = model_data(args.model, prep, spec, None, None, net.dtype, locale_options(args))
    with np.errstate(all="ignore"):
        P = finite_outputs(net.predict(model_inputs(net, prep, data, args)), args.model)
    predicted = prep.decode(P)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["prediction"]
    if args.proba:
        assert prep.classes is not None
        if P.shape[1] == 1:  # one sigmoid output: P(classes[1])
            P = np.hstack([1.0 - P.astype(np.float64), P.astype(np.float64)])
        header += [f"p_{label}" for label in prep.classes]
    writer.writerow(header)
    for i, value in enumerate(predicted):
        row = [cell(value)]
        if args.proba:
            row += [repr(float(p)) for p in P[i]]
        writer.writerow(row)
    write_text(args.out, buffer.getvalue())
    return 0


@contextlib.contextmanager
def from_pipe(spec: str) -> Iterator[str]:
    """The data file, or for ``-`` standard input copied to a file named ``stdin`` in a
    temporary folder (removed on leaving), so that it is read as any file is: in bounded
    pieces, by its first bytes (CSV, gzip, Parquet), its problems named by line."""
    if spec != "-":
        yield spec
        return
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="betaprop-") as folder:
        path = os.path.join(folder, "stdin")
        with open(path, "wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy, 1 << 20)
        yield path


def write_text(out: str | None, text: str) -> None:
    """``text`` to the file ``--out`` (atomically), or to stdout without one."""
    if out:
        if os.path.isdir(out):
            raise UserError(f"--out must be a file, got {out!r} (a folder)")
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder):
            raise UserError(f"--out {out!r}: the folder {folder!r} does not exist; nothing written")
        try:
            atomic_write(out, text.encode("utf-8"))
        except OSError as error:
            raise UserError(
                f"--out {out!r} cannot be written: {error.strerror or error}; nothing written"
            ) from None
    else:
        sys.stdout.write(text)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from rich.table import Table

    model, prep = open_model(args.model)
    prep = require_prep(args.model, prep)
    net = model.network
    target = args.target if args.target else prep.target_name
    data = model_data(args.model, prep, args.data, target, None, net.dtype, locale_options(args))
    if getattr(args, "unknown", None):
        prep.unknown = args.unknown
    data = Dataset(prep.columns_of(data), data.target, prep.feature_names, target, data.source)
    unseen_notes(prep)
    with np.errstate(all="ignore"):  # weights of a crafted file: refuse, not print nan
        finite_outputs(net.predict(prep.transform(data.X, net.dtype)), args.model)
    values = metrics(net, prep, data, np.arange(len(data.X)))
    minority_warning({"evaluated": values})
    table = Table(title="betaprop evaluate", caption=f"{args.model} on {args.data}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("rows", str(len(data.X)))
    for name, value in values.items():
        table.add_row(name, f"{value:.6g}")
    rich_console().print(table)
    return 0
