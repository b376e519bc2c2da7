"""Data for the command line: bundled datasets, CSV files, tasks and class labels.

Bundled datasets are scikit-learn's own small tables (``digits``, ``iris``, ``wine``,
``breast_cancer``, ``diabetes``) and three seeded synthetic problems (``xor``, ``moons``,
``circles``); nothing is downloaded. CSV files are comma-separated with a header row; every
problem in a file is reported as one ``DataError`` line naming the file, the line, the
column and the offending value.

What training learns about the data (scaling, label encoding) is ``files.preprocessing``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .frames import GAPS, MAX_MAGNITUDE, MISSING, Dataset, as_number, from_frame
from .numbers import read_numbers
from .reading import DataError, read_table, too_large

__all__ = [
    "DataError",
    "Dataset",
    "BUNDLED",
    "SYNTHETIC",
    "load_bundled",
    "read_csv",
    "load_data",
    "infer_task",
    "class_labels",
    "numeric_labels",
    "as_number",
    "from_frame",
    "TASKS",
]

Array = np.ndarray

BUNDLED = ("digits", "iris", "wine", "breast_cancer", "diabetes")
SYNTHETIC = ("xor", "moons", "circles")
TASKS = ("classification", "regression")
MAX_INTEGER_CLASSES = 20
TABLE_SUFFIXES = (".csv", ".tsv", ".gz", ".parquet", ".txt")


# ----------------------------------------------------------------------------- bundled data
def load_bundled(name: str, seed: int = 0) -> Dataset:
    """One of the bundled datasets by name (``BUNDLED`` + ``SYNTHETIC``).

    Class labels are the names scikit-learn gives them (``setosa``, ``malignant`` ...) or
    the digits themselves. The synthetic sets have 400 examples drawn with ``seed``.
    """
    if name not in BUNDLED + SYNTHETIC:
        raise DataError(f"dataset must be one of {list(BUNDLED + SYNTHETIC)}, got {name!r}")
    if name in SYNTHETIC:
        return _synthetic(name, seed)
    import sklearn.datasets

    loader = getattr(sklearn.datasets, f"load_{name}")
    bunch = loader()
    X = np.asarray(bunch.data, dtype=np.float64)
    names = [str(f) for f in getattr(bunch, "feature_names", [])] or [
        f"x{i + 1}" for i in range(X.shape[1])
    ]
    if name == "diabetes":
        return Dataset(X, np.asarray(bunch.target, dtype=np.float64), names, "target", name,
                       "regression")  # fmt: skip
    labels = [str(t) for t in getattr(bunch, "target_names", [])]
    if name == "digits" or not labels:
        target = np.array([str(int(t)) for t in bunch.target], dtype=object)
    else:
        target = np.array([labels[int(t)] for t in bunch.target], dtype=object)
    return Dataset(X, target, names, "target", name, "classification")


def _synthetic(name: str, seed: int) -> Dataset:
    n = 400
    if name == "xor":
        rng = np.random.default_rng(seed)
        X = rng.uniform(-1.0, 1.0, size=(n, 2))
        labels = ((X[:, 0] > 0) != (X[:, 1] > 0)).astype(int)
    else:
        import sklearn.datasets

        if name == "moons":
            X, labels = sklearn.datasets.make_moons(n, noise=0.2, random_state=seed)
        else:
            X, labels = sklearn.datasets.make_circles(n, noise=0.1, factor=0.5, random_state=seed)
    target = np.array([str(int(t)) for t in labels], dtype=object)
    return Dataset(np.asarray(X, dtype=np.float64), target, ["x1", "x2"], "label", name,
                   "classification")  # fmt: skip


# ----------------------------------------------------------------------------- CSV files
def read_csv(
    path: str,
    target: str | None = None,
    *,
    require_target: bool = True,
    features: Sequence[str] | None = None,
    sep: str | None = None,
    categorical: Sequence[str] | str = "auto",
    drop: Sequence[str] = (),
    allow_missing: bool = False,
    dtype: str = "float64",
    detect: bool = True,
    na_values: Sequence[str] = (),
    decimal: str = ".",
    thousands: str | None = None,
    gaps: str = GAPS,
) -> Dataset:
    """Read a CSV file with a header row (or a TSV, gzip or Parquet file): features, target.

    Parameters
    ----------
    path : the file (UTF-8; a byte-order mark is skipped); gzip-compressed or Parquet
        files are recognised by their first bytes.
    target : name of the target column; by default the last column.
    require_target : if False, a file without the ``target`` column is read as features
        only (``Dataset.target`` is then empty), as ``predict`` needs.
    features : read only these feature columns, in this order (as ``predict`` needs);
        by default every column but the target and ``drop``.
    sep : the separator (default ',', tab for ``.tsv``).
    categorical, drop, allow_missing, detect, na_values, gaps : see ``from_frame``.
    decimal, thousands : pandas' (numbers written "1.205,37": ``decimal=","``,
        ``thousands="."``).
    dtype : of ``Dataset.X`` ("float64", or "float32" to read a large table in half the
        memory when training in float32).

    Raises
    ------
    DataError : a one-line message for an empty file, a header without rows, a ragged row,
        a non-numeric, missing or infinite feature value (naming line, column and value),
        a missing target or feature column, or a ';'- or tab-separated file.
    """

    def select(header: list[str]) -> tuple[list[str], str | None] | None:
        """The feature and target columns of a plain numeric read, None for the general one."""
        name = target if target is not None else (header[-1] if require_target else "")
        if (not isinstance(categorical, str) and categorical) or not set(drop) <= set(header):
            return None
        if na_values or decimal != "." or thousands is not None:
            return None  # the general reader knows them
        if features is not None:
            names = list(features)
        else:
            names = [c for c in header if c != name and c not in drop]
        if not names or not set(names) <= set(header) or (require_target and name not in header):
            return None
        return names, name if name in header else None

    try:
        options = {"detect": detect, "na_values": na_values, "gaps": gaps, "decimal": decimal,
                   "thousands": thousands}  # fmt: skip
        return _read_csv(path, target, select, require_target, features, sep, categorical,
                         drop, allow_missing, dtype, options)  # fmt: skip
    except MemoryError:
        pass  # leaving this block lets go of what the read held, before the rows are counted
    raise too_large(path, sep, np.dtype(dtype).itemsize)


def _read_csv(
    path: str,
    target: str | None,
    select: Any,
    require_target: bool,
    features: Sequence[str] | None,
    sep: str | None,
    categorical: Sequence[str] | str,
    drop: Sequence[str],
    allow_missing: bool,
    dtype: str,
    options: dict[str, Any],
) -> Dataset:
    """``read_csv`` past its arguments: the numeric reader, else the general one."""
    simple = read_numbers(path, sep, select, dtype, MAX_MAGNITUDE, MISSING)
    if simple is not None:
        names, target_name, X, labels = simple
        return Dataset(X, labels, names, target_name or (target or ""), path)
    declared = [] if isinstance(categorical, str) else list(categorical)
    frame = read_table(
        path, sep, text=declared, decimal=options["decimal"], thousands=options["thousands"]
    )  # a declared category as written: "007"
    return from_frame(
        frame,
        target,
        source=path,
        require_target=require_target,
        features=features,
        categorical=categorical,
        drop=drop,
        allow_missing=allow_missing,
        sep=sep if sep is not None or not path.endswith((".tsv", ".tsv.gz")) else "\t",
        dtype=dtype,
        **options,
    )


def load_data(
    spec: str,
    target: str | None = None,
    *,
    require_target: bool = True,
    features: Sequence[str] | None = None,
    seed: int = 0,
    **options: Any,
) -> Dataset:
    """A bundled dataset by name, or a CSV/TSV/gzip/Parquet file by path (a path wins over a
    name); ``options`` (sep, categorical, drop, allow_missing, na_values, decimal, ...) go to
    ``read_csv``."""
    if spec in BUNDLED + SYNTHETIC and not os.path.exists(spec):
        data = load_bundled(spec, seed)
        if target is not None and target != data.target_name:
            raise DataError(
                f"target must be {data.target_name!r} for the bundled dataset {spec!r}, "
                f"got {target!r}"
            )
        return data
    if not os.path.exists(spec) and os.sep not in spec and not spec.endswith(TABLE_SUFFIXES):
        raise DataError(
            f"data must be a CSV file or one of {list(BUNDLED + SYNTHETIC)}, got {spec!r}"
        )
    return read_csv(spec, target, require_target=require_target, features=features, **options)


# ----------------------------------------------------------------------------- tasks, labels
def numeric_labels(target: Array) -> Array | None:
    """The target as float64 if every value is a number, else None."""
    if target.dtype.kind in "biuf":
        return np.asarray(target, dtype=np.float64)
    if len(target) and as_number(str(target[0])) is None:
        return None  # text labels, known from the first: no pass over every cell
    values = [as_number(str(v)) for v in target]
    if any(v is None for v in values):
        return None
    return np.array(values, dtype=np.float64)


def infer_task(data: Dataset) -> str:
    """ "classification" for text labels or few integer values, else "regression".

    A numeric target is a class label when all its values are integers and there are at
    most ``MAX_INTEGER_CLASSES`` distinct ones; force the other reading with ``--task``.
    """
    if data.task is not None:
        return data.task
    numbers = numeric_labels(data.target)
    if numbers is None:
        return "classification"
    integral = bool(np.all(numbers == np.round(numbers)))
    if integral and len(np.unique(numbers)) <= MAX_INTEGER_CLASSES:
        if numbers.size == 0 or np.abs(numbers).max() < 2.0**53:
            return "classification"
        # float64 merges integers beyond 2^53: there the exact labels are counted
        if len(set(class_labels(data.target))) <= MAX_INTEGER_CLASSES:
            return "classification"
    return "regression"


def class_labels(target: Array) -> list[str]:
    """Class labels as strings; numeric labels with integer values lose a trailing ".0".

    Integers are kept exactly, beyond float64's 2^53 and int64's 2^63 too: an integer
    column gives its own digits, an integer written as text is read with ``int``."""
    if target.dtype.kind in "iu":
        return [str(v) for v in target.tolist()]  # Python ints: exact
    numbers = numeric_labels(target)
    if numbers is not None and np.all(numbers == np.round(numbers)):
        pairs = zip(target.tolist(), numbers.tolist(), strict=True)
        return [_integer_label(cell, number) for cell, number in pairs]
    if target.dtype == np.dtype("O"):
        import pandas as pd

        if pd.api.types.infer_dtype(target, skipna=False) == "string":
            return target.tolist()  # text already: no str() per label
    return [str(v) for v in target]


def _integer_label(cell: Any, number: float) -> str:
    """The label of a cell whose value is an integer: its exact digits when it is written as
    one ("9223372036854775809", "007" as "7"), else the float's ("3.0" as "3")."""
    if isinstance(cell, str):
        with contextlib.suppress(ValueError):
            return str(int(cell.strip()))
    elif isinstance(cell, int):
        return str(cell)
    return str(int(number))
