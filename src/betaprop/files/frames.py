"""A pandas DataFrame as a ``Dataset``: the kind of every column, gaps, bad cells.

``from_frame`` decides which feature columns are numbers and which are categories, keeps
the numbers (float64, or float32 where it keeps them: ``numbers.faithful``) and the table
that needs encoding, and turns every problem into one ``DataError`` line naming the line
(a file's, read again by the strict reader) or row, the column and the value.
``datasets.read_csv`` brings its Parquet files here, and its CSV files unless every
feature cell is a number (``numbers.read_numbers``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .numbers import faithful, target_cells
from .reading import DataError, refuse

__all__ = ["Dataset", "from_frame", "frame_numbers", "as_number", "MAX_MAGNITUDE", "MISSING"]

Array = np.ndarray

# The largest magnitude of a number read from a data file: its square and the sum of a
# million of them stay finite in float64, so standardisation never overflows.
MAX_MAGNITUDE = 1e150
# Cells read as a missing value (case-insensitive, after stripping blanks).
MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-")


@dataclass
class Dataset:
    """A table of features X (n, p) in float64 (or the dtype asked of ``read_csv``) and a
    target column of n values.

    ``target`` holds a column of numbers as numbers (int64 or float64), any other as text;
    ``task`` is the task the source declares ("classification"/"regression") or None
    when it has to be inferred from the target (``infer_task``).
    """

    X: Array
    target: Array
    feature_names: list[str]
    target_name: str
    source: str
    task: str | None = None
    frame: Any = None  # the raw feature table (pandas) when it needs encoding or imputing
    categorical: list[str] = field(default_factory=list)


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


def _missing_mask(column: Any) -> Array:
    """Cells that are missing: NaN/None, pd.NA (nullable Int64, Float64, boolean columns),
    or text in ``MISSING`` (case-insensitive)."""
    if column.dtype.kind in "biuf" and not isinstance(column.dtype, np.dtype):
        return column.isna().to_numpy()  # pandas' nullable dtypes: pd.NA
    if column.dtype.kind == "f":
        return np.isnan(column.to_numpy())
    if column.dtype.kind in "biu":
        return np.zeros(len(column), dtype=bool)
    text = column.astype(object)
    isna = text.isna().to_numpy()
    lowered = text.where(~isna, "").astype(str).str.strip().str.lower()
    return isna | lowered.isin(MISSING).to_numpy()


def from_frame(
    frame: Any,
    target: str | None = None,
    *,
    source: str = "the table",
    require_target: bool = True,
    features: Sequence[str] | None = None,
    categorical: Sequence[str] | str = "auto",
    drop: Sequence[str] = (),
    allow_missing: bool = False,
    sep: str | None = None,
    dtype: str = "float64",
) -> Dataset:
    """A ``Dataset`` from a pandas DataFrame: numeric feature columns, categorical ones, target.

    A feature column is categorical when named in ``categorical``, or (``"auto"``, the
    default) when it holds booleans or when none of its present cells is a number (city
    names, dates as text). A numeric column with a cell that is not a number, an infinite
    value, or a missing one (unless ``allow_missing``: then it is imputed later) is refused
    with the line, column and value. ``Dataset.X`` holds the numeric columns (NaN where
    missing), of ``dtype`` (float64 where ``dtype`` would lose what training needs:
    ``numbers.faithful``); ``Dataset.frame`` the whole feature table when it needs encoding.
    A numeric target column stays numbers (int64 or float64), any other is stripped text.
    """

    header = [str(c) for c in frame.columns]
    is_file = source != "the table"
    if target is None:
        target_name = header[-1] if require_target else ""
    else:
        target_name = target
    has_target = target_name in header
    if require_target and not has_target:
        raise DataError(
            f"target column {target_name!r} is not in {source}; its columns are {header}"
        )
    unknown = [name for name in drop if name not in header]
    if unknown:
        raise DataError(f"--drop names columns {unknown} that are not in {source}")
    if features is None:
        names = [c for c in header if c != target_name and c not in drop]
    else:
        lacking = [name for name in features if name not in header]
        if lacking:
            if is_file:  # a malformed file is named as such first (a ragged row, ...)
                refuse(source, sep, lambda *cells: None, None)
            raise DataError(
                f"{source} lacks the feature columns {lacking[:5]} that the model was trained on"
            )
        names = list(features)
    if not names:
        raise DataError(f"{source} has no feature column besides the target {target_name!r}")
    declared = set(categorical) if not isinstance(categorical, str) else set()
    unknown = sorted(declared - set(header))
    if unknown:
        raise DataError(f"--categorical names columns {unknown} that are not in {source}")

    numeric, kinds, problems, ragged = _feature_kinds(
        frame, names, declared, categorical, allow_missing
    )
    labels = None
    if has_target:
        labels = target_cells(frame[target_name], MAX_MAGNITUDE, MISSING)
        problems |= labels is None
    if problems:
        _problem(frame, source, is_file, sep, names, kinds, target_name if has_target else None,
                 allow_missing)  # fmt: skip
    elif ragged and is_file:
        refuse(source, sep, lambda *cells: None, None)
    if has_target and labels is None:  # what the strict pass found no words for
        raise DataError(f"{source}: target {target_name!r} has a missing or too large value")
    numeric_names = [name for name in names if kinds[name] == "numeric"]
    columns = [numeric[name] for name in numeric_names]
    if np.dtype(dtype) != np.float64 and not all(_faithful(v, dtype) for v in columns):
        dtype = "float64"  # as read_numbers: float64 where dtype loses what training needs
    X = np.empty((len(frame), len(numeric_names)), dtype=dtype)
    for j, values in enumerate(columns):
        X[:, j] = values
    categorical_names = [name for name in names if kinds[name] == "categorical"]
    table = None
    if categorical_names or np.isnan(X).any():
        table = _feature_table(frame, names, kinds, numeric)
    return Dataset(
        X,
        labels if labels is not None else np.array([], dtype=object),
        names,
        target_name,
        source,
        frame=table,
        categorical=categorical_names,
    )


def frame_numbers(frame: Any, name: str) -> Any:
    """A pandas DataFrame of numbers and booleans, pandas' nullable dtypes (Int64, Float64,
    boolean) included, as a float64 matrix (n, p) for ``Network`` and ``fit``; a gap (pd.NA)
    is refused naming its row and column. Any other object comes back as it is (NumPy's
    conversion, and the dtype check after it, see those)."""
    import pandas as pd

    dtypes = list(frame.dtypes)
    if all(isinstance(d, np.dtype) for d in dtypes) or not all(
        pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d) for d in dtypes
    ):
        return frame
    gaps = frame.isna().to_numpy()
    if gaps.any():
        row, column = (int(i) for i in np.argwhere(gaps)[0])
        raise ValueError(
            f"{name} must be finite, got a missing value (pd.NA) at row {row}, column "
            f"{frame.columns[column]!r}; fill it in or drop the row"
        )
    return frame.to_numpy(dtype=np.float64)


def _faithful(column: Array, dtype: str) -> bool:
    """``numbers.faithful`` for one column of a frame, its gaps left out."""
    present = column[~np.isnan(column)][:, None]
    if present.size == 0:
        return True
    with np.errstate(over="ignore"):
        narrow = present.astype(dtype)
    return faithful(present, narrow, present.min(axis=0), present.max(axis=0))


def _feature_kinds(
    frame: Any,
    names: list[str],
    declared: set[str],
    categorical: Sequence[str] | str,
    allow_missing: bool,
) -> tuple[dict[str, Array], dict[str, str], bool, bool]:
    """Each feature column's kind ("numeric" or "categorical"), the numbers of the numeric
    ones, whether any cell is a problem the strict reader must word, whether any is missing."""
    import pandas as pd

    numeric: dict[str, Array] = {}
    kinds: dict[str, str] = {}
    problems = ragged = False
    for name in names:
        column = frame[name]
        missing = _missing_mask(column)
        if column.dtype.kind == "b" or name in declared:
            kinds[name] = "categorical"
        elif column.dtype.kind in "biuf":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)  # pd.NA: a gap
            kinds[name] = "numeric"
            numeric[name] = values
            problems |= bool((np.abs(values) > MAX_MAGNITUDE).any())
        else:
            text = column.astype(object).where(~missing, None)
            values = pd.to_numeric(text.str.strip(), errors="coerce").to_numpy(np.float64)
            bad = ~missing & np.isnan(values)
            stripped = text.dropna().astype(str).str.strip()
            underscores = bool(stripped.str.contains("_", regex=False).any())
            present = ~missing
            if present.any() and bad[present].all() and categorical == "auto" and not underscores:
                kinds[name] = "categorical"  # no present cell is a number
            else:
                kinds[name] = "numeric"
                numeric[name] = values
                problems |= bool(bad.any() or (np.abs(values) > MAX_MAGNITUDE).any() or underscores)
        if missing.any() and not allow_missing:
            problems = True
        ragged |= bool(missing.any())  # a short row reads as empty cells: the strict reader tells
    return numeric, kinds, problems, ragged


def _feature_table(
    frame: Any, names: list[str], kinds: dict[str, str], numeric: dict[str, Array]
) -> Any:
    """The feature table to encode: numbers for numeric columns, stripped text (None where
    missing) for categorical ones."""
    import pandas as pd

    parts = {}
    for name in names:
        if kinds[name] == "numeric":
            parts[name] = numeric[name]
        else:
            column = frame[name]
            missing = _missing_mask(column)
            cells = column.astype(object).where(~missing, None)
            parts[name] = cells.map(lambda v: v if v is None else str(v).strip()).to_numpy()
    return pd.DataFrame(parts, index=range(len(frame)))


def _problem(
    frame: Any,
    source: str,
    is_file: bool,
    sep: str | None,
    names: list[str],
    kinds: dict[str, str],
    target: str | None,
    allow_missing: bool,
) -> None:
    """Raise the first problem in row order: ragged row, then cells column by column."""

    position: dict[str, int] = {}

    def check(header: list[str], line: int, cells: list[str]) -> None:
        if not position:  # not header.index per cell: a table may have 1e5 columns
            position.update((name, j) for j, name in enumerate(header))
        for name in names:
            cell = cells[position[name]]
            if _is_missing(cell):
                if not allow_missing:
                    raise DataError(_cell_problem(source, line, name, cell, None, allow_missing))
                continue
            if kinds[name] == "categorical":
                continue
            value = as_number(cell)
            if value is None or not abs(value) <= MAX_MAGNITUDE:
                raise DataError(_cell_problem(source, line, name, cell, value, allow_missing))
        if target is not None:
            cell = cells[position[target]].strip()
            value = as_number(cell)
            if _is_missing(cell) or (value is not None and not abs(value) <= MAX_MAGNITUDE):
                raise DataError(_cell_problem(source, line, target, cell, value, False))

    if is_file:
        refuse(source, sep, check, "a cell could not be read as a number")
        return
    import pandas as pd

    header = [str(c) for c in frame.columns]
    for r, row in enumerate(frame.itertuples(index=False)):
        cells = ["" if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))
                 else str(v) for v in row]  # fmt: skip
        check(header, r, cells)  # "line" is the row index of a table


def _cell_problem(
    path: str, line: int, column: str, cell: str, value: float | None, imputable: bool = False
) -> str:
    where = f"{path} line {line}, column {column!r}"
    if _is_missing(cell):
        return (
            f"{where}: missing value {cell!r}; fill in or drop the rows with missing values, "
            "or give --impute median (or mean, most_frequent, constant)"
        )
    if value is not None and math.isinf(value):
        return f"{where}: infinite value {cell!r}; values must be finite numbers"
    if value is not None and abs(value) > MAX_MAGNITUDE:
        return (
            f"{where}: {cell!r} is too large in magnitude (betaprop reads numbers up to "
            f"{MAX_MAGNITUDE:g}, so that means and variances stay finite); rescale the column"
        )
    return f"{where}: {cell!r} is not a number"
