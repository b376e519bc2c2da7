"""A pandas DataFrame as a ``Dataset``: the kind of every column, gaps, bad cells.

``from_frame`` decides which feature columns are numbers and which are categories, keeps
the numbers (float64, or float32 where it keeps them: ``numbers.faithful``) and the table
that needs encoding, and turns every problem into one ``DataError`` line naming the line
(a file's, read again by the strict reader) or row, the column and the value.
``datasets.read_csv`` brings its Parquet files here, and its CSV files unless every
feature cell is a number (``numbers.read_numbers``).
The kind of each column (``feature_kinds``) and the table to encode (``feature_table``) are
``files.kinds``'; ``files.encoding`` encodes that table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .kinds import MANY_LEVELS as MANY_LEVELS  # this module's before files/kinds.py
from .kinds import (
    MAX_MAGNITUDE,
    MISSING,
    as_number,
    feature_kinds,
    feature_table,
    missing_mask,
    number_spelling,
)
from .numbers import faithful, target_cells
from .reading import DataError, maybe_ragged, refuse

__all__ = [
    "Dataset",
    "from_frame",
    "frame_numbers",
    "as_number",
    "MAX_MAGNITUDE",
    "MISSING",
    "GAPS",
]

Array = np.ndarray

# What to do about a gap that is refused (train's options; predict's say the model's)
GAPS = (
    "fill them in, drop those rows, or impute them (betaprop train: leave out --impute none; "
    "Preprocessing.fit: impute='median')"
)


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
    notes: list[str] = field(default_factory=list)  # what reading did to the table (the CLI says)


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
    detect: bool = True,
    na_values: Sequence[str] = (),
    lines: bool | None = None,
    gaps: str = GAPS,
    decimal: str = ".",
    thousands: str | None = None,
) -> Dataset:
    """A ``Dataset`` from a pandas DataFrame: numeric feature columns, categorical ones, target.

    A feature column is categorical when named in ``categorical`` (a list, or ``"auto"``: none
    declared), or, with ``detect`` (the default), when it holds booleans or when none of its
    present cells is a number (city names, ``New_York``, dates as text); ``detect=False``
    takes every other column as numbers (a model's columns, whose kinds are known). A column
    of dates or durations (a Parquet file's types) becomes numbers, with a note: seconds since
    1970-01-01 UTC, or seconds (text dates in ISO 8601 too, in such a model column). A column
    that reads as numbers in another locale ("1,37", "1,205") is refused naming
    ``--decimal``/``--thousands``; a column of lists or records is refused.

    A numeric column with a cell that is not a number, an infinite value, or a missing one
    (unless ``allow_missing``: then it is imputed later) is refused with the line (or row),
    column and value; ``na_values`` are more spellings of a gap, ``gaps`` says what to do
    about one (the command's options). With ``require_target``, rows whose target is missing
    are left out, with a note. ``Dataset.X`` holds the numeric columns (NaN where missing), of
    ``dtype`` (float64 where ``dtype`` would lose what training needs: ``numbers.faithful``);
    ``Dataset.frame`` the whole feature table when it needs encoding. A numeric target column
    stays numbers (int64 or float64), any other is stripped text.

    ``lines``: problems are worded by the lines of the text file ``source``, read again by the
    strict reader in the locale ``decimal``/``thousands``; by default when ``source`` names a
    file, never for a Parquet file (``read_table`` marks its frames).
    """

    header = [str(c) for c in frame.columns]
    if lines is None:
        lines = source != "the table" and frame.attrs.get("format") != "parquet"
    missing_cells = tuple(MISSING) + tuple(str(v).strip().lower() for v in na_values)
    notes: list[str] = []
    target_name = (header[-1] if require_target else "") if target is None else target
    has_target = target_name in header
    names, declared = _chosen_columns(
        frame, header, target_name, source, require_target, features, categorical, drop,
        lines, sep, missing_cells, notes,
    )  # fmt: skip
    wanted = target_name if has_target and require_target else None  # rows without it: left out
    frame, untargeted = _rows_with_target(frame, wanted, source, missing_cells, notes)
    dates: list[str] = []
    kinds, numeric, problems, ragged = feature_kinds(
        frame, names, declared, detect, allow_missing, missing_cells, source, notes, dates,
        number_spelling(decimal, thousands),
    )  # fmt: skip
    labels = None
    if has_target:
        labels = target_cells(frame[target_name], MAX_MAGNITUDE, missing_cells)
        problems |= labels is None
    if problems:
        _problem(frame, source, lines, sep, names, kinds, target_name if has_target else None,
                 allow_missing, missing_cells, untargeted, dates, gaps,
                 _locale_number(decimal, thousands))  # fmt: skip
    elif (ragged or untargeted) and lines and maybe_ragged(source, sep):
        refuse(source, sep, lambda *cells: None, None)  # a short row reads as gaps
    if has_target and labels is None:  # what the strict pass found no words for
        raise DataError(f"{source}: target {target_name!r} has a missing or too large value")
    labels = labels if labels is not None else np.array([], dtype=object)
    dataset = Dataset(_numbers(frame, names, kinds, numeric, dtype), labels, names, target_name,
                      source, categorical=[n for n in names if kinds[n] == "categorical"],
                      notes=notes)  # fmt: skip
    if dataset.categorical or np.isnan(dataset.X).any():
        dataset.frame = feature_table(frame, names, kinds, numeric, missing_cells, declared)
    return dataset


def _chosen_columns(
    frame: Any,
    header: list[str],
    target_name: str,
    source: str,
    require_target: bool,
    features: Sequence[str] | None,
    categorical: Sequence[str] | str,
    drop: Sequence[str],
    lines: bool,
    sep: str | None,
    missing_cells: Sequence[str],
    notes: list[str],
) -> tuple[list[str], set[str]]:
    """``from_frame``'s feature columns (the model's ``features``, or every column but the
    target, the dropped ones and those without any value, with a note) and the declared
    categorical ones; a target, a feature or a declared column that is not there is refused."""
    if require_target and target_name not in header:
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
            if lines:  # a malformed file is named as such first (a ragged row, ...)
                refuse(source, sep, lambda *cells: None, None)
            raise DataError(
                f"{source} lacks the feature columns {lacking[:5]} that the model was trained on"
            )
        names = list(features)
    if features is None:  # a column without any value teaches nothing: left out (as
        empty = [name for name in names if missing_mask(frame[name], missing_cells).all()]
        if empty:  # scikit-learn's SimpleImputer does)
            names = [name for name in names if name not in empty]
            notes.append(f"columns {empty[:10]} have no value in any row: left out")
    if not names:
        raise DataError(f"{source} has no feature column besides the target {target_name!r}")
    declared = set(categorical) if not isinstance(categorical, str) else set()
    unknown = sorted(declared - set(header))
    if unknown:
        raise DataError(f"--categorical names columns {unknown} that are not in {source}")
    return names, declared


def _rows_with_target(
    frame: Any, target_name: str | None, source: str, missing_cells: Sequence[str], notes: list[str]
) -> tuple[Any, bool]:
    """The rows of ``frame`` whose target is present, and whether any was left out (with a
    note: rows without a target teach nothing); a target with no value at all is refused.
    ``target_name`` None: every row, none left out."""
    if target_name is None:
        return frame, False
    absent = missing_mask(frame[target_name], missing_cells)
    if absent.all():
        raise DataError(f"{source}: target {target_name!r} has no value in any row")
    if not absent.any():
        return frame, False
    notes.append(
        f"{int(absent.sum())} of {len(absent)} rows have no value in the target "
        f"{target_name!r}: left out"
    )
    return frame.loc[~absent], True


def _numbers(
    frame: Any, names: list[str], kinds: dict[str, str], numeric: dict[str, Array], dtype: str
) -> Array:
    """The numeric feature columns as X (n, p) of ``dtype``, float64 where ``dtype`` would lose
    what training needs (as ``numbers.read_numbers``); NaN where a value is missing."""
    numeric_names = [name for name in names if kinds[name] == "numeric"]
    columns = [numeric[name] for name in numeric_names]
    if np.dtype(dtype) != np.float64 and not all(_faithful(v, dtype) for v in columns):
        dtype = "float64"  # as read_numbers: float64 where dtype loses what training needs
    X = np.empty((len(frame), len(numeric_names)), dtype=dtype)
    for j, values in enumerate(columns):
        X[:, j] = values
    return X


def frame_numbers(frame: Any, name: str) -> Any:
    """A pandas DataFrame of numbers and booleans, pandas' nullable dtypes (Int64, Float64,
    boolean) included, as a float64 matrix (n, p) for ``Network`` and ``fit``; a gap (pd.NA)
    is refused naming its row and column. Any other object comes back as it is (NumPy's
    conversion, and the dtype check after it, see those)."""
    import pandas as pd

    dtypes = list(frame.dtypes)
    numpy_numbers = all(isinstance(d, np.dtype) and d.kind in "iuf" for d in dtypes)
    if numpy_numbers or not all(
        pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d) for d in dtypes
    ):
        return frame  # NumPy's own conversion keeps their dtype (a bool column among them not)
    gaps = frame.isna().to_numpy()
    if gaps.any():
        row, column = (int(i) for i in np.argwhere(gaps)[0])
        label = frame.index[row]
        shown = repr(label) if isinstance(label, str) else str(label)
        where = f"row {row}" if label == row else f"row {row} (index {shown})"
        raise ValueError(
            f"{name} must be finite, got a missing value (pd.NA) at {where}, column "
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


def _locale_number(decimal: str, thousands: str | None) -> Any:
    """``as_number`` for cells written with ``decimal`` and ``thousands`` (None: as is), read
    as ``feature_kinds`` reads them (``number_spelling``)."""
    spelling = number_spelling(decimal, thousands)
    if spelling is None:
        return None

    def number(cell: str) -> float | None:
        return as_number(cell.translate(spelling))

    return number


def _problem(
    frame: Any,
    source: str,
    lines: bool,
    sep: str | None,
    names: list[str],
    kinds: dict[str, str],
    target: str | None,
    allow_missing: bool,
    missing_cells: Sequence[str],
    untargeted: bool,
    dates: Sequence[str],
    gaps: str,
    number: Any = None,
) -> None:
    """Raise the first problem in row order: ragged row, then cells column by column (the
    lines of the text file when ``lines``, else the rows of the frame); rows without a
    target are skipped when ``untargeted`` (they were left out)."""

    position: dict[str, int] = {}
    checked = [name for name in names if name not in dates]
    to_number = number or as_number

    def gap(cell: str) -> bool:
        return cell.strip().lower() in missing_cells

    def check(header: list[str], line: int, cells: list[str], where: str = "line") -> None:
        if not position:  # not header.index per cell: a table may have 1e5 columns
            position.update((name, j) for j, name in enumerate(header))
        if untargeted and target is not None and gap(cells[position[target]]):
            return
        for name in checked:
            cell = cells[position[name]]
            if gap(cell):
                if not allow_missing:
                    raise DataError(_cell_problem(source, line, name, cell, None, where, gaps))
                continue
            if kinds[name] == "categorical":
                continue
            value = to_number(cell)
            if value is None or not abs(value) <= MAX_MAGNITUDE:
                raise DataError(_cell_problem(source, line, name, cell, value, where))
        if target is not None:
            cell = cells[position[target]].strip()
            value = to_number(cell)
            if gap(cell):
                raise DataError(_cell_problem(source, line, target, cell, None, where, gaps))
            if value is not None and not abs(value) <= MAX_MAGNITUDE:
                raise DataError(_cell_problem(source, line, target, cell, value, where))

    if lines:
        refuse(source, sep, check, "a cell could not be read as a number")
        return
    import pandas as pd

    header = [str(c) for c in frame.columns]
    for r, row in enumerate(frame.itertuples(index=False)):
        cells = ["" if v is None or v is pd.NA or v is pd.NaT
                 or (isinstance(v, float) and math.isnan(v)) else str(v)
                 for v in row]  # fmt: skip
        check(header, r, cells, "row")  # the row's position from 0, as pandas and bp.fit


def _cell_problem(
    path: str,
    line: int,
    column: str,
    cell: str,
    value: float | None,
    unit: str = "line",
    gap: str | None = None,
) -> str:
    """The line of one cell's problem; ``gap`` words what to do about a missing value."""
    where = f"{path} {unit} {line}, column {column!r}"
    if gap is not None:
        return f"{where}: missing value {cell!r}; {gap}"
    if value is not None and math.isinf(value):
        return f"{where}: infinite value {cell!r}; values must be finite numbers"
    if value is not None and abs(value) > MAX_MAGNITUDE:
        return (
            f"{where}: {cell!r} is too large in magnitude (betaprop reads numbers up to "
            f"{MAX_MAGNITUDE:g}, so that means and variances stay finite); rescale the column"
        )
    return f"{where}: {cell!r} is not a number"
