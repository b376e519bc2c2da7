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
    text = column.astype(object)
    isna = text.isna().to_numpy()
    lowered = text.where(~isna, "").astype(str).str.strip().str.lower()
    return isna | lowered.isin(missing).to_numpy()


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
        missing = missing_mask(column, missing_cells)
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
        else:
            column = frame[name]
            present = ~missing_mask(column, missing_cells)
            cells = _present_text(column, present)
            if name in declared:
                cells = cells.str.replace(r"^([+-]?\d+)\.0*$", r"\1", regex=True)
            text = np.full(len(column), None, dtype=object)
            text[present] = cells.to_numpy(dtype=object)
            parts[name] = text
    return pd.DataFrame(parts, index=range(len(frame)))
