"""Reading the common table fast and in bounded memory: every feature cell a number.

Most data files are numbers only: no text category, no gap. ``read_numbers`` parses such a
CSV file with pandas' C parser in chunks of rows and copies each chunk into one matrix of
the dtype the caller trains in, so the whole table never exists as a float64 frame: the
peak is about the final matrix plus one chunk (benchmarks/reading.py measures it). Where
float32 would lose what training needs (values far from zero for their spread, as
timestamps; values beyond its range) the matrix is float64 instead (``faithful``). The
first cell that is not a plain, finite number of bounded magnitude (text, a gap, a
boolean, a ragged row) makes it give up and return None: the general reader
(``read_table`` and ``frames.from_frame``) then reads the file again and encodes,
imputes or refuses it, with its messages. Both give the same numbers
(tests/test_reading_numbers.py). A Parquet file of plain numbers is read into one matrix
too, a column of a row group at a time; any other goes to the general reader.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .kinds import text_levels
from .reading import open_table, parse_csv, shifted

__all__ = ["read_numbers", "faithful", "target_cells", "CHUNK_ROWS"]

Array = np.ndarray
CHUNK_ROWS = 8192  # rows parsed at a time: the parser needs about 3 KB per row of 50 numbers


def read_numbers(
    path: str,
    sep: str | None,
    select: Any,
    dtype: str,
    limit: float,
    missing: Sequence[str],
) -> tuple[list[str], str | None, Array, Array] | None:
    """(feature names, target name, X, target) of an all-numeric CSV or Parquet file, or None.

    ``select(header)`` returns (feature names, target name or None), or None to leave the
    file to the general reader. X is (n, p) of ``dtype``, or float64 where ``dtype`` would
    lose what training needs (``faithful``); the target is int64 or float64 as
    parsed or stripped text. ``limit`` bounds the magnitude of a number, ``missing``
    lists the (lower-case) cells that mean a gap in a text target. CSV is parsed
    ``CHUNK_ROWS`` rows at a time, Parquet read a column of a row group at a time.
    """
    with open_table(path, sep) as (stream, header, sep):
        try:
            if header is None:
                read = _parquet_numbers(stream, path, select, dtype, limit, missing)
                if read == "wide":  # read again, all in float64
                    return read_numbers(path, sep, select, "float64", limit, missing)
                return _with_labels(*read) if isinstance(read, tuple) else None
            source = _csv_chunks(stream, path, header, sep, select, limit, missing)
            if source is None:
                return None
            names, target, rows, chunks = source
            X = np.empty((rows, len(names)), dtype=dtype)
        except MemoryError:  # the caller words it: the data does not fit (reading.too_large)
            raise
        except Exception:  # numpy's "array is too big", ...: the general reader words it
            return None
        labels: list[Array] = []
        n, wide = 0, False
        low, high = np.full(len(names), np.inf), np.full(len(names), -np.inf)
        try:
            for block, label in chunks:
                if block is None or (target is not None and label is None):
                    return None
                if n + len(block) > X.shape[0]:  # realloc: no second copy of the rows so far
                    X.resize((max(n + len(block), X.shape[0] * 3 // 2), X.shape[1]), refcheck=False)
                with np.errstate(over="ignore"):  # beyond float32: inf, then read in float64
                    X[n : n + len(block)] = block
                low = np.minimum(low, block.min(axis=0))  # each column's range so far
                high = np.maximum(high, block.max(axis=0))
                if not faithful(block, X[n : n + len(block)], low, high):
                    wide = True  # read again, all in float64
                    break
                if label is not None:
                    labels.append(label)
                n += len(block)
        except MemoryError:
            raise
        except Exception:  # pandas' ParserError, gzip or UTF-8 errors: the general reader words it
            return None
    if wide:
        del X  # before the float64 matrix exists
        return read_numbers(path, sep, select, "float64", limit, missing)
    X.resize((n, X.shape[1]), refcheck=False)
    return _with_labels(names, target, X, labels)


def _with_labels(
    names: list[str], target: str | None, X: Array, labels: list[Array]
) -> tuple[list[str], str | None, Array, Array] | None:
    """``read_numbers``' result with the target's pieces as one column, or None when there
    are no rows or the pieces do not make one (numbers in some, text in others)."""
    if len(X) == 0:
        return None
    kinds = {label.dtype.kind for label in labels}
    if len(kinds) > 1 and ("O" in kinds or "u" in kinds):  # numbers in some chunks, text in
        return None  # others, or integers beyond int64 in some: one float64 would round them
    values = np.concatenate(labels) if labels else np.array([], dtype=object)
    return names, target, X, values


Chunks = Iterator[tuple[Array | None, Array | None]]  # (features, target) of some rows


def _csv_chunks(
    stream: Any,
    path: str,
    header: list[str],
    sep: str,
    select: Any,
    limit: float,
    missing: Sequence[str],
) -> tuple[list[str], str | None, int, Chunks] | None:
    """(names, target, estimated rows, chunks) of a CSV file for ``read_numbers``; a chunk's
    features are None where a cell is not a plain number."""
    rows = _estimated_rows(stream, path, len(header))
    parsed = parse_csv(stream, sep, chunksize=CHUNK_ROWS)
    chosen = select(header)
    if chosen is None:
        return None
    names, target = chosen
    position = {name: j for j, name in enumerate(header)}  # not header.index: 1e5 columns
    columns = [position[name] for name in names]
    where = None if target is None else position[target]

    def chunks() -> Chunks:
        first = 0  # the chunk's first row
        for chunk in parsed:
            if chunk.shape[1] != len(header) or shifted(chunk, first):  # the general reader
                yield None, None  # words it
                return
            first += len(chunk)
            block = _numbers(chunk, columns, limit)
            label = None
            if block is not None and where is not None:
                label = target_cells(chunk.iloc[:, where], limit, missing)
            yield block, label

    return names, target, rows, chunks()


def _parquet_numbers(
    handle: Any, path: str, select: Any, dtype: str, limit: float, missing: Sequence[str]
) -> tuple[list[str], str | None, Array, list[Array]] | str | None:
    """(names, target, X, the target's pieces) of a Parquet file whose feature columns are
    all plain numbers (integers or floats, no null, finite, within ``limit``), "wide" when
    ``dtype`` would lose what training needs, None for any other file (booleans, text,
    dates, nulls: the general reader). One column of one row group is read at a time, so
    the peak is about the matrix plus a column chunk (pyarrow's batches decode a whole row
    group: 6x the float32 matrix for a file of one group)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .header import check_header

    table = pq.ParquetFile(handle, buffer_size=1 << 20, pre_buffer=False)
    schema = table.schema_arrow
    header = [str(name).strip() for name in schema.names]
    check_header(path, header, ",".join(header), ",")  # the general reader's checks
    index = (schema.pandas_metadata or {}).get("index_columns", [])
    if any(isinstance(column, str) for column in index):  # pandas' index kept as a column
        return None
    if header != schema.names or (chosen := select(header)) is None:
        return None
    names, target = chosen
    kinds = {field.name: field.type for field in schema}
    if not all(pa.types.is_integer(kinds[n]) or pa.types.is_floating(kinds[n]) for n in names):
        return None
    X = np.empty((table.metadata.num_rows, len(names)), dtype=dtype)
    low, high = np.full(len(names), np.inf), np.full(len(names), -np.inf)
    labels: list[Array] = []
    n = 0
    for group in range(table.num_row_groups):
        rows = slice(n, n + table.metadata.row_group(group).num_rows)
        for j, name in enumerate(names):
            column = table.read_row_group(group, columns=[name]).column(0)
            if column.null_count:
                return None
            values = np.asarray(column.to_numpy(), dtype=np.float64)[:, None]
            if len(values) and not -limit <= values.min() <= values.max() <= limit:
                return None  # NaN, infinite or too large
            with np.errstate(over="ignore"):  # beyond float32: inf, then read in float64
                X[rows, j : j + 1] = values
            if len(values):  # the column's range so far
                low[j], high[j] = min(low[j], values.min()), max(high[j], values.max())
            if not faithful(values, X[rows, j : j + 1], low[j : j + 1], high[j : j + 1]):
                return "wide"
        if target is not None:
            cells = table.read_row_group(group, columns=[target]).column(0).to_pandas()
            label = target_cells(cells, limit, missing)
            if label is None:
                return None
            labels.append(label)
        n = rows.stop
    return names, target, X, labels


def faithful(values: Array, rounded: Array, low: Array, high: Array) -> bool:
    """Whether ``rounded``, float64 ``values`` (rows, p) in a narrower dtype, keeps what
    training needs: in every column, rounding moved no value by more than 2^-22 of the
    column's range [low, high] (a constant column is kept: it standardises to 0 either way).
    A column of timestamps, 1.7e9 +- 1e6, would be rounded to 128 s in float32 before it is
    centred and scaled, so it is not faithful; nor is a value beyond float32's range."""
    if rounded.dtype == np.float64 or values.size == 0:
        return True
    spread = high - low
    # float32 moves v by at most |v| 2^-24 within its range: most columns pass on that bound
    largest = np.maximum(np.abs(low), np.abs(high))  # (and by 2^-150 below its normal range)
    top = np.finfo(rounded.dtype).max
    unsure = ~((largest <= 4.0 * spread) & (largest <= top) & (spread >= 2.0**-128))
    if not unsure.any():
        return True
    with np.errstate(over="ignore", invalid="ignore"):  # the others: the errors themselves
        error = np.abs(rounded[:, unsure] - values[:, unsure]).max(axis=0)
    return bool(np.all((error <= spread[unsure] * 2.0**-22) | (spread[unsure] == 0)))


def _estimated_rows(stream: Any, path: str, fields: int) -> int:
    """The number of data rows, estimated from the file's size and its first lines (exact
    enough to allocate once for most files; the matrix grows when it was too small), and
    never more than a row of ``fields`` one-byte cells could make."""
    import gzip
    import os

    head = stream.read(1 << 16)
    stream.seek(0)
    lines = max(head.count(b"\n"), 1)
    if isinstance(stream, gzip.GzipFile):  # its size once decompressed is unknown
        return CHUNK_ROWS
    if len(head) < (1 << 16):
        return lines
    size = os.fstat(stream.fileno()).st_size
    return min(int(size / (len(head) / lines) * 1.02) + 16, size // (2 * fields) + 1)


def _numbers(chunk: Any, columns: list[int], limit: float) -> Array | None:
    """The chunk's feature cells as float64 (rows, p), or None if one is not a plain number."""
    kinds = [dtype.kind for dtype in chunk.dtypes]  # one Series of dtypes per call
    if any(kinds[j] not in "iuf" for j in columns):
        return None  # text, booleans, or a gap somewhere in the chunk
    first, last = columns[0], columns[-1]
    if columns == list(range(first, last + 1)):  # the usual case: one slice, one copy
        values = chunk.iloc[:, first : last + 1].to_numpy(dtype=np.float64)
    else:
        values = chunk.iloc[:, columns].to_numpy(dtype=np.float64)
    if not -limit <= values.min() <= values.max() <= limit:  # NaN, infinite or too large
        return None
    return values


def target_cells(column: Any, limit: float, missing: Sequence[str]) -> Array | None:
    """A target column's cells: numbers as parsed (int64, uint64 or float64), any other as
    stripped text; None when a cell is a gap (``missing``, lower-case) or a number beyond
    ``limit`` (the general reader's strict pass names it)."""
    import pandas as pd

    kind = column.dtype.kind
    if not isinstance(column.dtype, np.dtype) and column.isna().any():
        return None  # pd.NA in a nullable column: a gap
    if kind in "iuf":  # numbers as parsed: no text round trip; integers stay exact (2^63 + 1)
        values = column.to_numpy({"i": np.int64, "u": np.uint64, "f": np.float64}[kind])
        return values if (np.abs(values) <= limit).all() else None  # NaN too
    # text: each distinct cell stripped, tested and parsed once (kinds.text_levels); a cell
    # without a value (None, NaN) is ""
    text = column if isinstance(column.dtype, pd.StringDtype) else column.astype(object)
    codes, levels = text_levels(text)  # pandas' strings (Arrow) factorized as they are
    if ("" in missing and (codes < 0).any()) or levels.str.lower().isin(missing).any():
        return None
    numbers = pd.to_numeric(levels, errors="coerce").to_numpy(np.float64)
    if (np.abs(numbers) > limit).any():
        return None
    return np.append(levels.to_numpy(dtype=object), "")[codes]
