"""The kind of every feature column of a pandas DataFrame: numbers, categories, dates, gaps.

``feature_kinds`` decides, column by column with vectorised pandas/NumPy operations, which
columns are numbers (and their float64 values) and which are categories; ``feature_table`` is
the table ``files.encoding`` encodes. ``frames.from_frame`` calls both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DataError

__all__ = [
    "MAX_MAGNITUDE",
    "MISSING",
    "as_number",
    "missing_mask",
    "feature_kinds",
    "feature_table",
]

Array = np.ndarray

# The largest magnitude of a number read from a data file: its square and the sum of a
# million of them stay finite in float64, so standardisation never overflows.
MAX_MAGNITUDE = 1e150
# Cells read as a missing value (case-insensitive, after stripping blanks).
MISSING = ("", "na", "n/a", "nan", "null", "none", "?", "-")


def as_number(cell: str) -> float | None:
    """The cell as a float, or None if it is not a plain number (NaN and inf are numbers)."""
    text = cell.strip()
    if "_" in text:  # Python's float() accepts 1_000; a CSV file should not
        return None
    try:
        return float(text)
    except ValueError:
        return None


def missing_mask(column: Any, missing: Sequence[str] = MISSING) -> Array:
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
    codes, levels = text_levels(column)
    return _per_cell(_level_gaps(levels, missing), codes, True)


def text_levels(column: Any) -> tuple[Array, Any]:
    """A text column as (codes, levels): its distinct cells as stripped text (a pandas Series,
    in the order of their first row) and each cell's position among them, -1 where it is
    NaN/None/pd.NA. Every test of a cell (a gap? a number? a date?) is then made once per
    level and taken to the cells by their codes: no pass of Python or of text over the
    cells. A cell that is not text (a Parquet object column) is its ``str``."""
    import pandas as pd

    strings = isinstance(column.dtype, pd.StringDtype) or (
        column.dtype == np.dtype("O")
        and pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")
    )
    if strings:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
    else:  # booleans, numbers, lists ...: as text, one by one (1 and 1.0 and True are one key)
        absent = column.isna().to_numpy()
        cells = np.full(len(column), None, dtype=object)
        cells[~absent] = column[~absent].astype(str).to_numpy(dtype=object)
        codes, uniques = pd.factorize(cells, use_na_sentinel=True)
    levels = pd.Series(np.asarray(uniques, dtype=object), dtype=object).str.strip()
    return np.asarray(codes, dtype=np.intp), levels


def _level_gaps(levels: Any, missing: Sequence[str]) -> Array:
    """Which (stripped) levels spell a gap (``missing``, lower-case)."""
    return levels.str.lower().isin(missing).to_numpy(dtype=bool)


def _per_cell(per_level: Array, codes: Array, absent: Any) -> Array:
    """A value per level taken to each cell by its code; ``absent`` where the code is -1."""
    return np.append(per_level, np.array([absent], dtype=per_level.dtype))[codes]


def feature_kinds(
    frame: Any,
    names: list[str],
    declared: set[str],
    detect: bool,
    allow_missing: bool,
    missing_cells: Sequence[str],
    source: str,
    notes: list[str],
    dates: list[str],
    spelling: dict[int, str | None] | None = None,
) -> tuple[dict[str, str], dict[str, Array], bool, bool]:
    """Each feature column's kind ("numeric" or "categorical"), the numbers of the numeric
    ones, whether any cell is a problem the strict reader must word, whether any is missing;
    the columns of dates (read as seconds) are added to ``dates``, and a note to ``notes``.
    ``spelling``: how a text cell's number is read in another locale (``number_spelling``).
    One pass of vectorised pandas/NumPy operations per column, no Python loop over cells."""

    numeric: dict[str, Array] = {}
    kinds: dict[str, str] = {}
    problems = ragged = False
    for name in names:
        column = frame[name]
        kind = column.dtype.kind
        if kind in "biufmM":
            missing = missing_mask(column, missing_cells)
        else:  # text: each test made once per distinct cell (text_levels)
            codes, levels = text_levels(column)
            gap = _level_gaps(levels, missing_cells)
            missing = _per_cell(gap, codes, True)
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
            _nested(column, missing)
            if spelling:  # "1,37" where the parser left a column as text (it has a gap)
                levels = levels.str.translate(spelling)
            kinds[name], values, bad = _text_kind(codes, levels, gap, name, detect, source, notes)
            if values is not None:
                numeric[name] = values
                problems |= bool(bad)
                if bad is None:  # a model's date column (from Parquet), in a text file
                    dates.append(name)
        if missing.any() and not allow_missing:
            problems = True
        ragged |= bool(missing.any())  # a short row reads as empty cells: the strict reader tells
    if dates:
        notes.append(
            f"date columns {dates} read as numbers: seconds since 1970-01-01 (UTC), or seconds "
            "for durations"
        )
    return kinds, numeric, problems, ragged


def number_spelling(decimal: str, thousands: str | None) -> dict[int, str | None] | None:
    """A ``str.translate`` table that spells numbers written with ``decimal`` and
    ``thousands`` (pandas' options: "1.205,37" with "," and ".") as Python reads them
    ("1205.37"); a "." that is neither is made unreadable, as pandas' parser would not read
    it. None for Python's own spelling. pandas' parser reads such numbers itself, but leaves
    a column with a gap as text, which ``feature_kinds`` then reads with this table."""
    if decimal == "." and thousands is None:
        return None
    table: dict[int, str | None] = {ord("."): "\x00"}
    if thousands is not None:
        table[ord(thousands)] = None
    table[ord(decimal)] = "."
    return table


MANY_LEVELS = 50  # a text column with more levels, or more than half its cells distinct


def _many_levels(levels: Any, cells: int, name: str, notes: list[str]) -> None:
    """A note for a text column of many ``levels`` (distinct present cells, stripped) in
    ``cells`` present cells (an identifier, a name): each level is one one-hot input, and a
    level seen once teaches nothing."""
    count = int(levels.nunique())  # " a" and "a" are one level once stripped
    if count > MANY_LEVELS or (cells >= 20 and count > cells / 2):
        notes.append(
            f"warning: column {name!r} has {count} distinct values in {cells} rows "
            f"(one-hot: {count} inputs); an identifier or free text teaches little: leave it "
            f"out with --drop {name}, unless its values recur"
        )


def _text_kind(
    codes: Array, levels: Any, gap: Array, name: str, detect: bool, source: str, notes: list[str]
) -> tuple[str, Array | None, bool | None]:
    """A text column's kind from its ``levels`` (``text_levels``; ``gap``: which spell a gap):
    "categorical" when no present cell is a number (with ``detect``), else "numeric" with its
    values (NaN where missing or not a number) and whether a cell is a problem (not a number,
    too large), None for a column of ISO 8601 dates read as seconds (``detect`` False)."""
    import pandas as pd

    present = ~gap  # per level; every level occurs in some cell
    parsed = np.array(pd.to_numeric(levels.where(present, ""), errors="coerce"), np.float64)
    underscores = levels.str.contains("_", regex=False).to_numpy(dtype=bool)
    parsed[underscores | gap] = np.nan  # pandas reads 1_000; data should not
    bad = present & np.isnan(parsed)
    if bad.any():  # "1,205" among numbers, or every cell "1,37": another locale's
        _refuse_locale(levels[bad], name, source)
    stamps = _text_dates(levels[present]) if bad.any() and not detect else None
    if detect and present.any() and bad[present].all():
        cells = int(np.count_nonzero(present[codes[codes >= 0]]))
        _many_levels(levels[present], cells, name, notes)
        return "categorical", None, False  # no present cell is a number
    if stamps is not None:
        parsed[present] = stamps
        return "numeric", _per_cell(parsed, codes, np.nan), None
    problem = bool(bad.any() or (np.abs(parsed[present]) > MAX_MAGNITUDE).any())
    return "numeric", _per_cell(parsed, codes, np.nan), problem


def _nested(column: Any, missing: Array) -> None:
    """Refuse a column of lists or records (a Parquet list or struct column), named by its
    first present cell."""
    if column.dtype != np.dtype("O") or missing.all():
        return
    first = column.iloc[int(np.argmin(missing))]
    if isinstance(first, (list, tuple, dict, set, np.ndarray)):
        raise DataError(
            f"column {column.name!r} holds {type(first).__name__} values (e.g. "
            f"{_short(first)}), not numbers or text; betaprop reads one value per cell: "
            "flatten it into columns, or leave it out with --drop"
        )


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


def feature_table(
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
        else:  # the cells share the levels' strings: no text made per cell
            codes, levels = text_levels(frame[name])
            if name in declared:
                levels = levels.str.replace(r"^([+-]?\d+)\.0*$", r"\1", regex=True)
            text = levels.to_numpy(dtype=object, copy=True)
            text[_level_gaps(levels, missing_cells)] = None
            cells = _per_cell(text, codes, None)
            if frame[name].dtype.kind in "biufmM":  # --na-values -999 in a column of numbers
                cells[missing_mask(frame[name], missing_cells)] = None
            # object, not pandas' Arrow strings: the encoder takes the cells as they are
            parts[name] = pd.Series(cells, dtype=object, copy=False)
    return pd.DataFrame(parts, index=range(len(frame)))
