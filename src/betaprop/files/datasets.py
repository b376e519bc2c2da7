"""Data for the command line: bundled datasets, CSV files, tasks and class labels.

Bundled datasets are scikit-learn's own small tables (``digits``, ``iris``, ``wine``,
``breast_cancer``, ``diabetes``) and three seeded synthetic problems (``xor``, ``moons``,
``circles``); nothing is downloaded. CSV files are comma-separated with a header row; every
problem in a file is reported as one ``DataError`` line naming the file, the line, the
column and the offending value.

What training learns about the data (scaling, label encoding) is ``files.preprocessing``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # moved to files.preprocessing; see __getattr__ at the end
    from .preprocessing import Preprocessing

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
    "TASKS",
    "Preprocessing",
]

Array = np.ndarray

BUNDLED = ("digits", "iris", "wine", "breast_cancer", "diabetes")
SYNTHETIC = ("xor", "moons", "circles")
TASKS = ("classification", "regression")
# Cells read as a missing value (case-insensitive, after stripping blanks).
MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-")
# A numeric target with integer values and at most this many distinct values is a class label.
MAX_INTEGER_CLASSES = 20


class DataError(ValueError):
    """A data file or data set name that cannot be used; the message is one line."""


@dataclass
class Dataset:
    """A table of features X (n, p) in float64 and a target column of n values.

    ``target`` holds strings for class labels read from a file, numbers otherwise;
    ``task`` is the task the source declares ("classification"/"regression") or None
    when it has to be inferred from the target (``infer_task``).
    """

    X: Array
    target: Array
    feature_names: list[str]
    target_name: str
    source: str
    task: str | None = None


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
def as_number(cell: str) -> float | None:
    """The cell as a float, or None if it is not a plain number (NaN and inf are numbers)."""
    text = cell.strip()
    if "_" in text:  # Python's float() accepts 1_000; a CSV file should not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def _read_rows(path: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of every non-blank row; a UTF-8 BOM is skipped."""
    if not os.path.exists(path):
        raise DataError(f"data file {path!r} does not exist")
    if os.path.isdir(path):
        raise DataError(f"data file {path!r} is a folder, not a CSV file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not a UTF-8 text file (byte {error.start} cannot be decoded); "
            "save it as UTF-8 CSV"
        ) from None
    except OSError as error:
        raise DataError(f"data file {path!r} cannot be read: {error.strerror}") from None
    if "\x00" in text:
        raise DataError(f"{path}: not a CSV text file (it contains NUL bytes)")
    reader = csv.reader(text.splitlines(keepends=True))
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells) and len(cells) == 1:
                continue  # blank line
            if header is None:
                header = [c.strip() for c in cells]
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({error})") from None
    if header is None:
        raise DataError(f"{path} is empty: expected a header row and data rows")
    raw_header = text.lstrip().splitlines()[0] if text.strip() else ""
    if len(header) == 1:
        for separator, word in ((";", "';'"), ("\t", "tab")):
            if raw_header.count(separator) >= 1:
                raise DataError(
                    f"{path} looks {word}-separated (its header has no ',' but "
                    f"{raw_header.count(separator)} {word}); betaprop reads comma-separated "
                    "CSV: save the file with ',' as the separator"
                )
    if not rows:
        raise DataError(f"{path} has a header row but no data rows")
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"{path} line 1: column {i + 1} of the header has no name")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path} line 1: the column name {name!r} appears twice")
        seen.add(name)
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(
                f"{path} line {line} has {len(cells)} fields, but the header has {len(header)}"
            )
    return header, rows


def read_csv(
    path: str,
    target: str | None = None,
    *,
    require_target: bool = True,
    features: Sequence[str] | None = None,
) -> Dataset:
    """Read a comma-separated file with a header row: numeric features and a target column.

    Parameters
    ----------
    path : the file (UTF-8; a byte-order mark is skipped).
    target : name of the target column; by default the last column.
    require_target : if False, a file without the ``target`` column is read as features
        only (``Dataset.target`` is then empty), as ``predict`` needs.
    features : read only these feature columns, in this order (as ``predict`` needs);
        by default every column but the target.

    Raises
    ------
    DataError : a one-line message for an empty file, a header without rows, a ragged row,
        a non-numeric, missing or infinite feature value (naming line, column and value),
        a missing target or feature column, or a ';'- or tab-separated file.
    """
    header, rows = _read_rows(path)
    if target is None:
        target_name = header[-1] if require_target else ""
    else:
        target_name = target
    has_target = target_name in header
    if require_target and not has_target:
        raise DataError(f"target column {target_name!r} is not in {path}; its columns are {header}")
    t = header.index(target_name) if has_target else -1
    if features is None:
        feature_index = [i for i in range(len(header)) if i != t]
    else:
        missing = [name for name in features if name not in header]
        if missing:
            raise DataError(
                f"{path} lacks the feature columns {missing[:5]} that the model was trained on"
            )
        feature_index = [header.index(name) for name in features]
    if not feature_index:
        raise DataError(f"{path} has no feature column besides the target {target_name!r}")
    X = np.empty((len(rows), len(feature_index)), dtype=np.float64)
    labels: list[str] = []
    for r, (line, cells) in enumerate(rows):
        for k, i in enumerate(feature_index):
            value = as_number(cells[i])
            if value is None or not math.isfinite(value):
                raise DataError(_cell_problem(path, line, header[i], cells[i], value))
            X[r, k] = value
        if has_target:
            cell = cells[t].strip()
            value = as_number(cell)
            if _is_missing(cell) or (value is not None and not math.isfinite(value)):
                raise DataError(_cell_problem(path, line, target_name, cells[t], value))
            labels.append(cell)
    return Dataset(
        X,
        np.array(labels, dtype=object),
        [header[i] for i in feature_index],
        target_name,
        path,
    )


def _cell_problem(path: str, line: int, column: str, cell: str, value: float | None) -> str:
    where = f"{path} line {line}, column {column!r}"
    if _is_missing(cell):
        return f"{where}: missing value {cell!r}; fill in or drop the rows with missing values"
    if value is not None and math.isinf(value):
        return f"{where}: infinite value {cell!r}; values must be finite numbers"
    return f"{where}: {cell!r} is not a number"


def load_data(
    spec: str,
    target: str | None = None,
    *,
    require_target: bool = True,
    features: Sequence[str] | None = None,
    seed: int = 0,
) -> Dataset:
    """A bundled dataset by name, or a CSV file by path (a path wins over a name)."""
    if spec in BUNDLED + SYNTHETIC and not os.path.exists(spec):
        data = load_bundled(spec, seed)
        if target is not None and target != data.target_name:
            raise DataError(
                f"target must be {data.target_name!r} for the bundled dataset {spec!r}, "
                f"got {target!r}"
            )
        return data
    if not os.path.exists(spec) and os.sep not in spec and not spec.endswith(".csv"):
        raise DataError(
            f"data must be a CSV file or one of {list(BUNDLED + SYNTHETIC)}, got {spec!r}"
        )
    return read_csv(spec, target, require_target=require_target, features=features)


# ----------------------------------------------------------------------------- tasks, labels
def numeric_labels(target: Array) -> Array | None:
    """The target as float64 if every value is a number, else None."""
    if target.dtype.kind in "biuf":
        return np.asarray(target, dtype=np.float64)
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
        return "classification"
    return "regression"


def class_labels(target: Array) -> list[str]:
    """Class labels as strings; numeric labels with integer values lose a trailing ".0"."""
    numbers = numeric_labels(target)
    if numbers is not None and np.all(numbers == np.round(numbers)):
        return [str(int(v)) for v in numbers]
    return [str(v) for v in target]


def __getattr__(name: str) -> object:
    """``Preprocessing`` moved to ``files.preprocessing``; the command line still imports it
    from here. Imported on first use: ``files.preprocessing`` itself imports this module."""
    if name == "Preprocessing":
        from .preprocessing import Preprocessing

        return Preprocessing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
