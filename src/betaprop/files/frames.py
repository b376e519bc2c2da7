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

# The largest magnitude of a number read from a data file: its square and the sum of a
# million of them stay finite in float64, so standardisation never overflows.
MAX_MAGNITUDE = 1e150
# Cells read as a missing value (case-insensitive, after stripping blanks).
MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-")
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


def as_number(cell: str) -> float | None:
    """The cell as a float, or None if it is not a plain number (NaN and inf are numbers)."""
    text = cell.strip()
    if "_" in text:  # Python's float() accepts 1_000; a CSV file should not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _missing_mask(column: Any, missing: Sequence[str] = MISSING) -> Array:
    """Cells that are missing: NaN/None/NaT, pd.NA (nullable Int64, Float64, boolean columns),
    text in ``missing`` (lower-case; compared case-insensitively), or a number that one of
    ``missing`` spells (``--na-values -999``)."""
    kind = column.dtype.kind
    if kind in "biufmM":
        gaps = column.isna().to_numpy()  # NaN, pd.NA (pandas' nullable dtypes), NaT
        sentinels = [v for v in map(as_number, missing) if v is not None and math.isfinite(v)]
        if sentinels and kind in "iuf":
            gaps = gaps | np.isin(column.to_numpy(np.float64, na_value=np.nan), sentinels)
        return gaps
    text = column.astype(object)
    isna = text.isna().to_numpy()
    lowered = text.where(~isna, "").astype(str).str.strip().str.lower()
    return isna | lowered.isin(missing).to_numpy()


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
            if lines:  # a malformed file is named as such first (a ragged row, ...)
                refuse(source, sep, lambda *cells: None, None)
            raise DataError(
                f"{source} lacks the feature columns {lacking[:5]} that the model was trained on"
            )
        names = list(features)
    if features is None:  # a column without any value teaches nothing: left out (as
        empty = [name for name in names if _missing_mask(frame[name], missing_cells).all()]
        if empty:  # scikit-learn's SimpleImputer does)
            names = [name for name in names if name not in empty]
            notes.append(f"columns {empty[:10]} have no value in any row: left out")
    if not names:
        raise DataError(f"{source} has no feature column besides the target {target_name!r}")
    declared = set(categorical) if not isinstance(categorical, str) else set()
    unknown = sorted(declared - set(header))
    if unknown:
        raise DataError(f"--categorical names columns {unknown} that are not in {source}")
    untargeted = False
    if has_target and require_target:
        absent = _missing_mask(frame[target_name], missing_cells)
        if absent.all():
            raise DataError(f"{source}: target {target_name!r} has no value in any row")
        if absent.any():  # rows without a target teach nothing: left out, as a note says
            untargeted = True
            frame = frame.loc[~absent]
            notes.append(
                f"{int(absent.sum())} of {len(absent)} rows have no value in the target "
                f"{target_name!r}: left out"
            )

    dates: list[str] = []
    kinds, numeric, problems, ragged = _feature_kinds(
        frame, names, declared, detect, allow_missing, missing_cells, source, notes, dates
    )
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
        table = _feature_table(frame, names, kinds, numeric, missing_cells, declared)
    return Dataset(
        X,
        labels if labels is not None else np.array([], dtype=object),
        names,
        target_name,
        source,
        frame=table,
        categorical=categorical_names,
        notes=notes,
    )


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


def _feature_kinds(
    frame: Any,
    names: list[str],
    declared: set[str],
    detect: bool,
    allow_missing: bool,
    missing_cells: Sequence[str],
    source: str,
    notes: list[str],
    dates: list[str],
) -> tuple[dict[str, str], dict[str, Array], bool, bool]:
    """Each feature column's kind ("numeric" or "categorical"), the numbers of the numeric
    ones, whether any cell is a problem the strict reader must word, whether any is missing;
    the columns of dates (read as seconds) are added to ``dates``, and a note to ``notes``.
    One pass of vectorised pandas/NumPy operations per column, no Python loop over cells."""
    import pandas as pd

    numeric: dict[str, Array] = {}
    kinds: dict[str, str] = {}
    problems = ragged = False
    for name in names:
        column = frame[name]
        missing = _missing_mask(column, missing_cells)
        kind = column.dtype.kind
        if name in declared or (detect and (kind == "b" or column.dtype.name == "category")):
            kinds[name] = "categorical"
        elif kind in "mM":  # dates and durations: numbers of seconds
            kinds[name] = "numeric"
            numeric[name] = _seconds(column)
            dates.append(name)
        elif kind in "biuf":
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)  # pd.NA: a gap
            values = np.where(missing, np.nan, values)  # --na-values; a copy (read-only views)
            kinds[name] = "numeric"
            numeric[name] = values
            problems |= bool((np.abs(values) > MAX_MAGNITUDE).any())
        else:
            present = ~missing
            cells = _present_text(column, present)
            parsed = pd.to_numeric(cells, errors="coerce").to_numpy(np.float64)
            underscores = cells.str.contains("_", regex=False).to_numpy()
            parsed = np.where(underscores, np.nan, parsed)  # pandas reads 1_000; data should not
            values = np.full(len(column), np.nan)
            values[present] = parsed
            bad = present & np.isnan(values)
            if bad.any():  # "1,205" among numbers, or every cell "1,37": another locale's
                _refuse_locale(cells[bad[present]], name, source)
            stamps = _text_dates(cells) if bad.any() and not detect else None
            if detect and present.any() and bad[present].all():
                kinds[name] = "categorical"  # no present cell is a number
                _many_levels(cells, name, notes)
            elif stamps is not None:  # a model's date column (from Parquet), in a text file
                values[present] = stamps
                kinds[name] = "numeric"
                numeric[name] = values
                dates.append(name)
            else:
                kinds[name] = "numeric"
                numeric[name] = values
                problems |= bool(bad.any() or (np.abs(values) > MAX_MAGNITUDE).any())
        if missing.any() and not allow_missing:
            problems = True
        ragged |= bool(missing.any())  # a short row reads as empty cells: the strict reader tells
    if dates:
        notes.append(
            f"date columns {dates} read as numbers: seconds since 1970-01-01 (UTC), or seconds "
            "for durations"
        )
    return kinds, numeric, problems, ragged


def _locale_number(decimal: str, thousands: str | None) -> Any:
    """``as_number`` for cells written with ``decimal`` and ``thousands`` (None: as is)."""
    if decimal == "." and thousands is None:
        return None

    def number(cell: str) -> float | None:
        text = cell.replace(thousands, "") if thousands else cell
        return as_number(text.replace(decimal, ".") if decimal != "." else text)

    return number


MANY_LEVELS = 50  # a text column with more levels, or more than half its cells distinct


def _many_levels(cells: Any, name: str, notes: list[str]) -> None:
    """A note for a text column of many levels (an identifier, a name): each level is one
    one-hot input, and a level seen once teaches nothing."""
    levels = len(_unique(cells))
    if levels > MANY_LEVELS or (len(cells) >= 20 and levels > len(cells) / 2):
        notes.append(
            f"warning: column {name!r} has {levels} distinct values in {len(cells)} rows "
            f"(one-hot: {levels} inputs); an identifier or free text teaches little: leave it "
            f"out with --drop {name}, unless its values recur"
        )


def _unique(cells: Any) -> Array:
    import pandas as pd

    return pd.unique(cells.to_numpy(dtype=object))


def _present_text(column: Any, present: Array) -> Any:
    """The present cells of a column as stripped text (a pandas Series), without its gaps;
    lists and records (a Parquet list or struct column) are refused."""
    cells = column[present]
    if cells.dtype == np.dtype("O") and len(cells):
        first = cells.iloc[0]
        if isinstance(first, (list, tuple, dict, set, np.ndarray)):
            raise DataError(
                f"column {column.name!r} holds {type(first).__name__} values (e.g. "
                f"{_short(first)}), not numbers or text; betaprop reads one value per cell: "
                "flatten it into columns, or leave it out with --drop"
            )
    return cells.astype(str).str.strip()


def _short(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _seconds(column: Any) -> Array:
    """A datetime column as seconds since 1970-01-01 UTC (a time zone's dates converted to
    UTC, naive ones taken as UTC), a duration column as seconds; NaN where missing."""
    if getattr(column.dtype, "tz", None) is not None:
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    times = column.to_numpy()
    micro = times.astype(f"{times.dtype.str[1]}8[us]")  # microseconds: 290 000 years either way
    values = micro.astype(np.int64).astype(np.float64) / 1e6
    values[np.isnat(times)] = np.nan
    return values


# A number in another locale: a decimal comma ("1,37"), thousands separated by ',' or '.'
_DECIMAL_COMMA = r"[+-]?\d*,\d+"
_THOUSANDS = r"[+-]?\d{1,3}(?:[,.' ]\d{3})+(?:[.,]\d+)?"


def _refuse_locale(cells: Any, name: str, source: str) -> None:
    """Refuse a column of text whose every present cell is a number written in another
    locale (decimal comma, thousands separators), naming the option that reads it."""
    if not len(cells):
        return
    sample = cells.iloc[0]
    if cells.str.fullmatch(_THOUSANDS).all():
        separator = next(c for c in sample if not c.isdigit() and c not in "+-")
        tail = sample.rsplit(separator, 1)[-1]
        decimal = next((c for c in ".," if c != separator and c in sample), None)
        if separator == "," and len(tail) == 3 and decimal is None:
            hint = "--thousands ',' (or --decimal ',' if ',' marks the decimals)"
        else:
            hint = f"--thousands {separator!r}" + (
                f" --decimal {decimal!r}" if decimal and decimal != "." else ""
            )
    elif cells.str.fullmatch(_DECIMAL_COMMA).all():
        hint = "--decimal ','"
    else:
        return
    raise DataError(
        f"{source}: column {name!r} looks like numbers written in another locale "
        f"({sample!r}); give {hint} to read them as numbers, or --categorical {name} to "
        "encode them as categories"
    )


def _text_dates(cells: Any) -> Array | None:
    """Seconds since 1970-01-01 UTC of text cells that are all ISO 8601 dates or times
    ("2024-03-01", "2024-03-01T10:00:00Z"), else None."""
    import pandas as pd

    if not cells.str.match(r"\d{4}-\d{2}-\d{2}").all():
        return None
    try:
        times = pd.to_datetime(cells, format="ISO8601", utc=True)
    except (ValueError, TypeError, OverflowError):
        return None
    return _seconds(times)


def _feature_table(
    frame: Any,
    names: list[str],
    kinds: dict[str, str],
    numeric: dict[str, Array],
    missing_cells: Sequence[str],
    declared: set[str],
) -> Any:
    """The feature table to encode: numbers for numeric columns, stripped text (None where
    missing) for categorical ones; a declared category written as a whole number with a
    fraction of zeros is that number ("4.0" is "4", as a float column's 4.0)."""
    import pandas as pd

    parts = {}
    for name in names:
        if kinds[name] == "numeric":
            parts[name] = numeric[name]
        else:
            column = frame[name]
            present = ~_missing_mask(column, missing_cells)
            cells = _present_text(column, present)
            if name in declared:
                cells = cells.str.replace(r"^([+-]?\d+)\.0*$", r"\1", regex=True)
            text = np.full(len(column), None, dtype=object)
            text[present] = cells.to_numpy(dtype=object)
            parts[name] = text
    return pd.DataFrame(parts, index=range(len(frame)))


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
