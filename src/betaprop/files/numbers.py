"""Reading the common table fast and in bounded memory: every feature cell a number.

Most data files are numbers only: no text category, no gap. ``read_numbers`` parses such a
CSV file with pandas' C parser in chunks of rows and copies each chunk into one matrix of
the dtype the caller trains in, so the whole table never exists as a float64 frame: the
peak is about the final matrix plus one chunk (benchmarks/reading.py measures it). The
first cell that is not a plain, finite number of bounded magnitude (text, a gap, a boolean,
a ragged row) makes it give up and return None: the general reader (``read_table`` and
``datasets.from_frame``) then reads the file again and encodes, imputes or refuses it, with
its messages. Both give the same numbers (tests/test_reading_numbers.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .reading import open_table, parse_csv

__all__ = ["read_numbers", "CHUNK_ROWS"]

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
    """(feature names, target name, X, target) of an all-numeric CSV file, or None.

    ``select(header)`` returns (feature names, target name or None), or None to leave the
    file to the general reader. X is (n, p) of ``dtype``; the target is int64 or float64 as
    parsed or stripped text. ``limit`` bounds the magnitude of a number, ``missing``
    lists the (lower-case) cells that mean a gap in a text target.
    """
    with open_table(path, sep) as (stream, header, sep):
        if header is None:  # Parquet: pyarrow reads it column by column already
            return None
        chosen = select(header)
        if chosen is None:
            return None
        names, target = chosen
        columns = [header.index(name) for name in names]
        where = None if target is None else header.index(target)
        rows = _estimated_rows(stream, path, len(header))
        try:
            X = np.empty((rows, len(names)), dtype=dtype)
        except MemoryError:  # the general reader words what does not fit
            return None
        labels: list[Array] = []
        n = 0
        try:
            for chunk in parse_csv(stream, sep, chunksize=CHUNK_ROWS):
                if chunk.shape[1] != len(header):
                    return None
                block = _numbers(chunk, columns, limit)
                label = None if where is None else _target(chunk.iloc[:, where], limit, missing)
                if block is None or (where is not None and label is None):
                    return None
                if n + len(block) > X.shape[0]:  # realloc: no second copy of the rows so far
                    X.resize((max(n + len(block), X.shape[0] * 3 // 2), X.shape[1]), refcheck=False)
                X[n : n + len(block)] = block
                if label is not None:
                    labels.append(label)
                n += len(block)
        except Exception:  # pandas' ParserError, gzip or UTF-8 errors: the general reader words it
            return None
    if n == 0:
        return None
    X.resize((n, X.shape[1]), refcheck=False)
    kinds = {label.dtype.kind for label in labels}
    if len(kinds) > 1 and "O" in kinds:  # numbers in some chunks, text in others
        return None
    values = np.concatenate(labels) if labels else np.array([], dtype=object)
    return names, target, X, values


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


def _target(column: Any, limit: float, missing: Sequence[str]) -> Array | None:
    """The chunk's target cells: numbers (float64, int64 when whole), or stripped text; None
    for a gap or a number beyond the limit (the general reader names them)."""
    if column.dtype.kind == "i":
        values = column.to_numpy(dtype=np.int64)
        return values if (np.abs(values) <= limit).all() else None
    if column.dtype.kind in "uf":
        values = column.to_numpy(dtype=np.float64)
        return values if (np.abs(values) <= limit).all() else None
    if column.dtype.kind == "b":
        return None
    text = column.astype(str).str.strip()
    if text.str.lower().isin(missing).any():
        return None
    return text.to_numpy(dtype=object)
