"""Data for the command line: bundled datasets, CSV files, standardisation and label encoding.

Bundled datasets are scikit-learn's own small tables (``digits``, ``iris``, ``wine``,
``breast_cancer``, ``diabetes``) and three seeded synthetic problems (``xor``, ``moons``,
``circles``); nothing is downloaded. CSV files are comma-separated with a header row; every
problem in a file is reported as one ``DataError`` line naming the file, the line, the
column and the offending value.

``Preprocessing`` holds what training learned about the data -- feature means and scales,
the class labels, the scale of a regression target -- as plain JSON-ready fields, so that a
model file can carry it and ``predict`` applies exactly the same transformation.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "Dataset",
    "Preprocessing",
    "BUNDLED",
    "SYNTHETIC",
    "load_bundled",
    "read_csv",
    "load_data",
    "infer_task",
    "class_labels",
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
def _number(cell: str) -> float | None:
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
            value = _number(cells[i])
            if value is None or not math.isfinite(value):
                raise DataError(_cell_problem(path, line, header[i], cells[i], value))
            X[r, k] = value
        if has_target:
            cell = cells[t].strip()
            value = _number(cell)
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
def _numeric_labels(target: Array) -> Array | None:
    """The target as float64 if every value is a number, else None."""
    if target.dtype.kind in "biuf":
        return np.asarray(target, dtype=np.float64)
    values = [_number(str(v)) for v in target]
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
    numbers = _numeric_labels(data.target)
    if numbers is None:
        return "classification"
    integral = bool(np.all(numbers == np.round(numbers)))
    if integral and len(np.unique(numbers)) <= MAX_INTEGER_CLASSES:
        return "classification"
    return "regression"


def class_labels(target: Array) -> list[str]:
    """Class labels as strings; numeric labels with integer values lose a trailing ".0"."""
    numbers = _numeric_labels(target)
    if numbers is not None and np.all(numbers == np.round(numbers)):
        return [str(int(v)) for v in numbers]
    return [str(v) for v in target]


def _sorted_classes(labels: Sequence[str]) -> list[str]:
    unique = set(labels)
    numbers = {label: _number(label) for label in unique}
    if all(v is not None for v in numbers.values()):
        return sorted(unique, key=lambda label: (numbers[label], label))
    return sorted(unique)


# ----------------------------------------------------------------------------- preprocessing
@dataclass
class Preprocessing:
    """What ``predict`` must apply: feature standardisation and the target's encoding.

    Features: x' = (x - mean) / scale per column (scale 1 for a constant column).
    Classification: ``classes`` in output order; one-hot rows d (or one column d = [label
    is classes[1]] for a single sigmoid output). Regression: d = (t - target_mean) /
    target_scale, undone on the way out.
    """

    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    task: str
    target_name: str
    classes: list[str] | None = None
    target_mean: float = 0.0
    target_scale: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(cls, data: Dataset, task: str, rows: Array | None = None) -> Preprocessing:
        """Learn the scaling from ``data`` (only the given ``rows``: the training split)."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
        X = data.X if rows is None else data.X[rows]
        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0.0] = 1.0
        prep = cls(
            list(data.feature_names),
            [float(v) for v in mean],
            [float(v) for v in scale],
            task,
            data.target_name,
        )
        if task == "classification":
            prep.classes = _sorted_classes(class_labels(data.target))
            if len(prep.classes) < 2:
                raise DataError(
                    f"target {data.target_name!r} must have at least 2 classes for "
                    f"classification, got {prep.classes}"
                )
        else:
            numbers = _numeric_labels(data.target)
            if numbers is None:
                bad = next(v for v in data.target if _number(str(v)) is None)
                raise DataError(
                    f"target {data.target_name!r} must be numeric for regression, got {bad!r}"
                )
            t = numbers if rows is None else numbers[rows]
            prep.target_mean = float(t.mean())
            spread = float(t.std())
            prep.target_scale = spread if spread > 0 else 1.0
        return prep

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.classes else 0

    def columns_of(self, data: Dataset) -> Array:
        """The model's feature columns of ``data``, in the model's order (by name)."""
        if data.feature_names == self.feature_names:
            return data.X
        missing = [name for name in self.feature_names if name not in data.feature_names]
        if missing:
            raise DataError(
                f"{data.source} lacks the feature columns {missing} that the model was trained on"
            )
        index = [data.feature_names.index(name) for name in self.feature_names]
        return data.X[:, index]

    def transform(self, X: Array, dtype: str = "float64") -> Array:
        """Standardised features (x - mean) / scale, computed in float64, then cast."""
        Z = (np.asarray(X, dtype=np.float64) - np.array(self.mean)) / np.array(self.scale)
        return Z.astype(dtype)

    def encode(self, target: Array, n_outputs: int, dtype: str = "float64") -> Array:
        """Target rows d for the network: one-hot, a single 0/1 column, or scaled values."""
        if self.task == "regression":
            numbers = _numeric_labels(target)
            if numbers is None:
                raise DataError(f"target {self.target_name!r} must be numeric for regression")
            d = (numbers - self.target_mean) / self.target_scale
            return d.reshape(-1, 1).astype(dtype)
        assert self.classes is not None
        position = {label: k for k, label in enumerate(self.classes)}
        labels = class_labels(target)
        unknown = sorted({label for label in labels if label not in position})
        if unknown:
            raise DataError(
                f"target {self.target_name!r} has classes {unknown[:5]} that the model does "
                f"not know; its classes are {self.classes}"
            )
        k = np.array([position[label] for label in labels])
        if n_outputs == 1:
            return (k == 1).astype(dtype).reshape(-1, 1)
        return np.eye(n_outputs, dtype=dtype)[k]

    def decode(self, P: Array) -> list[str] | Array:
        """Network outputs (n, N_Q) back to class labels or target values."""
        if self.task == "regression":
            return P[:, 0].astype(np.float64) * self.target_scale + self.target_mean
        assert self.classes is not None
        if P.shape[1] == 1:
            return [self.classes[int(p > 0.5)] for p in P[:, 0]]
        return [self.classes[k] for k in P.argmax(axis=1)]

    def labels(self, target: Array) -> list[str]:
        """Class labels of a target column in the model's spelling."""
        return class_labels(target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (floats round-trip exactly through JSON)."""
        return {
            "feature_names": self.feature_names,
            "mean": self.mean,
            "scale": self.scale,
            "task": self.task,
            "target_name": self.target_name,
            "classes": self.classes,
            "target_mean": self.target_mean,
            "target_scale": self.target_scale,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> Preprocessing:
        """Rebuild from ``to_dict`` output; raises ValueError on anything malformed."""
        try:
            prep = cls(
                [str(v) for v in fields["feature_names"]],
                [float(v) for v in fields["mean"]],
                [float(v) for v in fields["scale"]],
                str(fields["task"]),
                str(fields["target_name"]),
                None if fields["classes"] is None else [str(c) for c in fields["classes"]],
                float(fields["target_mean"]),
                float(fields["target_scale"]),
                dict(fields.get("extra", {})),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"preprocessing must hold the fields of Preprocessing: {error}"
            ) from None
        if prep.task not in TASKS or not (
            len(prep.mean) == len(prep.scale) == len(prep.feature_names)
        ):
            raise ValueError("preprocessing fields are inconsistent")
        if not all(math.isfinite(v) and v != 0 for v in prep.scale):
            raise ValueError("preprocessing scale must be finite and non-zero")
        return prep
