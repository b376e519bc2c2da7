"""Reading a data file in parts: row ranges that one process streams, or K ranks share.

A part is a pandas DataFrame with ``read_table``'s contract (the same columns, numbers parsed by
pandas' C parser, every other cell as written) plus the global number of its first row, so
that the parts of a file, in order, are its table:

- Parquet: whole row groups, merged up to ``part_bytes``; counts from the footer, no data read.
- CSV (TSV, any separator): byte ranges of about ``part_bytes`` aligned to record starts, as
  Dask and Spark split files: part k starts at the first record start at or after its nominal
  offset k x ``part_bytes``. The plan is one pass of NumPy over the bytes (a few MiB at a
  time) that counts quote characters, so that a line break inside a quoted field (odd parity)
  is never taken for a record end: exact for RFC 4180, where a quote opens a field, closes it
  or is doubled. A file where a quote stands anywhere else (``5" pipe``), a lone carriage
  return, or gzip compression cannot be split so cheaply: it is one part. The same pass counts
  each part's rows (blank and whitespace-only lines are skipped, as pandas skips them).
- ``.npy``: ``np.load(mmap_mode="r")`` row ranges (arrays, no pandas).

``owned_parts`` gives rank r of K a contiguous block of parts (by rows, or by bytes for CSV).
Columns whose kind differs between parts (numbers in one, text in another) are agreed by
widening (``files.agreement``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DataError, first_line
from .parquet_parts import parquet_columns as parquet_columns  # re-exported
from .parquet_parts import plan_row_groups, read_row_groups
from .reading import open_table, parse_csv
from .streams import open_data

__all__ = ["Part", "plan_parts", "read_part", "owned_parts", "parquet_columns", "PART_BYTES"]

PART_BYTES = 64 * 2**20  # a part's nominal size (Dask's default block size)
_SCAN = 4 * 2**20  # bytes of a CSV file scanned at a time by the plan
_QUOTE, _LF, _CR, _SPACE, _TAB = 34, 10, 13, 32, 9
_END = 256  # "no byte": past the end of the file


@dataclass(frozen=True)
class Part:
    """Where part ``index`` of a file lies and which rows it holds.

    ``start``/``stop`` locate it: row groups [start, stop) of a Parquet file, bytes
    [start, stop) of a CSV file (``stop`` None: the whole file, one part), rows [start, stop)
    of a ``.npy`` array; every part holds at least one row. ``first_row`` is the global
    number of its first row and ``rows`` its number of rows; ``header_end`` is where a CSV
    file's header record ends (its BOM, blank lines and header, prefixed to the part's bytes
    when it is parsed).
    """

    index: int
    kind: str  # "parquet" | "csv" | "npy"
    start: int
    stop: int | None
    first_row: int
    rows: int | None
    header_end: int = 0


def plan_parts(
    path: str, *, sep: str | None = None, part_bytes: int = PART_BYTES, agreement: Any = None
) -> list[Part]:
    """The parts of a data file, in order, its header checked once (``open_table``).

    Reads a Parquet footer, a ``.npy`` header, or scans a CSV file's bytes once (bounded
    memory) for its record starts. With an ``Agreement`` of K ranks, every rank calls this
    together: each scans 1/K of a CSV file's bytes and all get the same plan as one process
    (``files.csv_scan``). Raises a one-line ``DataError``.
    """
    if not (isinstance(part_bytes, int) and part_bytes > 0):
        raise ValueError(f"part_bytes must be a positive integer, got {part_bytes!r}")
    if _is_npy(path):
        return _plan_npy(path, part_bytes)
    with open_table(path, sep) as (stream, header, separator):
        if header is None:
            groups = plan_row_groups(stream, path, part_bytes)
            return [Part(k, "parquet", *where) for k, where in enumerate(groups)]
        handle, size = open_data(path)
        with handle:
            if handle.read(2) == b"\x1f\x8b":  # gzip cannot be split
                return [Part(0, "csv", 0, None, 0, None)]
            handle.seek(0)
            if agreement is not None and agreement.size > 1:
                from .csv_plan import plan_csv_ranks

                return plan_csv_ranks(handle, size, path, separator, part_bytes, agreement)
            return _plan_csv(handle, size, path, separator, part_bytes)


def read_part(
    path: str,
    part: Part,
    *,
    sep: str | None = None,
    text: Sequence[str] = (),
    decimal: str = ".",
    thousands: str | None = None,
    columns: Sequence[str] | None = None,
) -> tuple[Any, int]:
    """The rows of ``part`` and the global number of its first row.

    A DataFrame as ``read_table`` reads it (``text``: columns kept as written; ``decimal``,
    ``thousands``: the locale of numbers), or for ``.npy`` a read-only view of the mapped
    rows. Only the part's bytes (and a CSV file's header) are read; of a Parquet file, only
    ``columns`` (stripped names, at least one of the file's; None: all).
    """
    if part.kind == "npy":
        array = np.load(path, mmap_mode="r")
        return array[part.start : part.stop], part.first_row
    if part.kind == "parquet":
        frame = read_row_groups(path, part.start, part.stop or 0, columns)
        _planned_rows(path, part, len(frame))
        frame.index = range(part.first_row, part.first_row + len(frame))
        return frame, part.first_row
    if part.stop is None:  # one part: the whole file
        from .reading import read_table

        return read_table(path, sep, text, decimal, thousands), 0
    handle, _ = open_data(path)
    with handle:
        head = handle.read(part.header_end)
        handle.seek(part.start)
        body = handle.read(part.stop - part.start)
    separator = sep or ("\t" if path.endswith(".tsv") else ",")
    names = _header_names(head, separator)
    positions = [i for i, name in enumerate(names) if name in text]
    try:
        frame = parse_csv(io.BytesIO(head + body), separator, text=positions,
                          decimal=decimal, thousands=thousands)  # fmt: skip
    except MemoryError:
        raise
    except UnicodeDecodeError as error:
        raise DataError(
            f"{path}: not a UTF-8 text file (byte {part.start + error.start - len(head)} cannot "
            "be decoded); save it as UTF-8 CSV"
        ) from None
    except Exception as error:  # pandas' ParserError, ...
        first = first_line(error)
        raise DataError(
            f"{path}: malformed CSV in bytes {part.start}-{part.stop} (rows from "
            f"{part.first_row + 1}): {first}"
        ) from None
    if frame.shape[1] != len(names) or not _plain_index(frame):  # a first row too long:
        raise DataError(  # pandas took its first cells for an index
            f"{path}: malformed CSV in bytes {part.start}-{part.stop} (rows from "
            f"{part.first_row + 1}): a row has more fields than the header's {len(names)}"
        )
    frame.columns = names
    for name in [n for n in names if frame[n].dtype == np.dtype("O")]:
        frame[name] = frame[name].astype(str)  # parsed in chunks: numbers and text
    _planned_rows(path, part, len(frame))
    frame.index = range(part.first_row, part.first_row + len(frame))
    return frame, part.first_row


def _planned_rows(path: str, part: Part, rows: int) -> None:
    """Refuse a part that does not hold the rows its plan counted: the file changed since."""
    if part.rows is not None and rows != part.rows:
        raise DataError(
            f"{path} changed after its parts were planned: part {part.index} holds {rows} "
            f"rows, not the {part.rows} planned; plan its parts again"
        )


def _plain_index(frame: Any) -> bool:
    import pandas as pd

    return isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def owned_parts(parts: Sequence[Part], rank: int, size: int) -> list[Part]:
    """Rank ``rank`` of ``size``'s contiguous block of parts: those whose first row (CSV: first
    byte past the header) falls in [r n / K, (r + 1) n / K). A rank may own none."""
    if not (0 <= rank < size):
        raise ValueError(f"rank must be in [0, {size}), got {rank!r}")
    if not parts:
        return []
    csv_bytes = parts[0].kind == "csv"
    base = parts[0].start if csv_bytes else 0
    last = parts[-1]
    if csv_bytes:
        total = (last.stop if last.stop is not None else last.start + 1) - base
    else:
        total = last.first_row + (last.rows or 0)
    total = max(total, 1)
    key = [(p.start - base) if csv_bytes else p.first_row for p in parts]
    return [p for p, x in zip(parts, key, strict=True) if min(x * size // total, size - 1) == rank]


def _is_npy(path: str) -> bool:
    if path.endswith(".npy"):
        return True
    try:
        handle, _ = open_data(path)
    except DataError:
        return False
    with handle:
        return bool(handle.read(6) == b"\x93NUMPY")


def _plan_npy(path: str, part_bytes: int) -> list[Part]:
    handle, _ = open_data(path)  # a regular file, or a one-line DataError
    handle.close()
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim not in (1, 2) or len(array) == 0:
        raise DataError(f"{path}: the array must be 1- or 2-D with rows, got shape {array.shape}")
    row_bytes = max(array.itemsize * (array.shape[1] if array.ndim == 2 else 1), 1)
    step = max(part_bytes // row_bytes, 1)
    n = len(array)
    return [
        Part(k, "npy", a, min(a + step, n), a, min(a + step, n) - a)
        for k, a in enumerate(range(0, n, step))
    ]


def _header_names(head: bytes, sep: str) -> list[str]:
    """The stripped names of the first non-blank record of ``head`` (checked by the plan)."""
    reader = csv.reader(io.StringIO(head.decode("utf-8-sig"), newline=""), delimiter=sep)
    for cells in reader:
        if cells and not (len(cells) == 1 and not cells[0].strip()):
            return [c.strip() for c in cells]
    raise DataError("the header record is empty")  # the plan found it: not reached


def _plan_csv(handle: Any, size: int, path: str, sep: str, part_bytes: int) -> list[Part]:
    """Record starts found in one pass: the cut after nominal offset k x ``part_bytes``.

    A record ends at a line feed after an even number of quotes; it is a row unless it holds
    only spaces, tabs (not the separator) and carriage returns. One part when a quote or a
    carriage return does not follow RFC 4180 (the parity would not be the parser's).
    """
    whole = [Part(0, "csv", 0, None, 0, None)]
    if len(sep.encode()) != 1:
        return whole
    scan = _Scan(ord(sep), part_bytes)
    offset = 3 if handle.read(3) == b"\xef\xbb\xbf" else 0
    handle.seek(offset)
    scan.offset = offset
    while piece := handle.read(_SCAN):
        after = handle.read(1)
        handle.seek(scan.offset + len(piece))
        if not scan.feed(np.frombuffer(piece, dtype=np.uint8), after[0] if after else _END):
            return whole
    scan.finish(size)
    if scan.header_end is None:
        raise DataError(f"{path} has a header row but no data rows")
    return parts_of(scan.cuts, scan.header_end, path)


def parts_of(cuts: list[tuple[int, int, int]], header_end: int, path: str) -> list[Part]:
    """The CSV parts of the cuts (start, stop, rows); a range of blank lines joins the part
    before it (or after it: the first part starts after the header)."""
    if sum(rows for _, _, rows in cuts) == 0:
        raise DataError(f"{path} has a header row but no data rows")
    parts: list[Part] = []
    first, begin = 0, header_end
    for _, stop, rows in cuts:
        if rows == 0 and parts:
            parts[-1] = Part(len(parts) - 1, "csv", parts[-1].start, stop, parts[-1].first_row,
                             parts[-1].rows, header_end)  # fmt: skip
        elif rows:
            parts.append(Part(len(parts), "csv", begin, stop, first, rows, header_end))
            first += rows
        begin = stop
    return parts


def header_end(handle: Any, size: int, sep: str) -> int | None:
    """Where the header record of a CSV file ends (its first non-blank record), scanned from
    the start; None when the quotes seen on the way break RFC 4180 (one part)."""
    scan = _Scan(ord(sep), size + 1)
    offset = 3 if handle.read(3) == b"\xef\xbb\xbf" else 0
    handle.seek(offset)
    scan.offset = offset
    while scan.header_end is None and (piece := handle.read(_SCAN)):
        after = handle.read(1)
        handle.seek(scan.offset + len(piece))
        if not scan.feed(np.frombuffer(piece, dtype=np.uint8), after[0] if after else _END):
            return None
    return scan.header_end if scan.header_end is not None else size  # no line feed: no rows


class _Scan:
    """The state of the plan's pass over a CSV file's bytes."""

    def __init__(self, sep: int, part_bytes: int) -> None:
        self.sep = sep
        self.part_bytes = part_bytes
        self.offset = 0  # of the next piece in the file
        self.quotes = 0  # quote characters so far
        self.before = _LF  # the byte before the next piece (a line start)
        self.filled = False  # the record under way holds a non-blank byte
        self.header_end: int | None = None
        self.next_cut: int | None = None  # the next nominal offset
        self.part_start = 0
        self.rows = 0  # rows of the part under way
        self.cuts: list[tuple[int, int, int]] = []  # (start, stop, rows) of closed parts

    def feed(self, b: np.ndarray, after: int) -> bool:
        """Scan one piece; False when the file does not follow RFC 4180's quoting."""
        q = np.flatnonzero(b == _QUOTE)
        prev = np.where(q > 0, b[q - 1], self.before).astype(np.int16)
        nxt = np.where(q + 1 < len(b), b[np.minimum(q + 1, len(b) - 1)], after).astype(np.int16)
        opening = (self.quotes + np.arange(len(q))) % 2 == 0
        if not np.isin(prev[opening], (self.sep, _LF, _QUOTE)).all():
            return False
        if not np.isin(nxt[~opening], (self.sep, _CR, _LF, _QUOTE, _END)).all():
            return False
        cr = np.flatnonzero(b == _CR)
        cr_next = np.where(cr + 1 < len(b), b[np.minimum(cr + 1, len(b) - 1)], after)
        if (cr_next != _LF).any():
            return False
        lf = np.flatnonzero(b == _LF)
        ends = lf[(self.quotes + np.searchsorted(q, lf)) % 2 == 0]  # record ends
        white = (b == _LF) | (b == _CR)
        for blank in (_SPACE, _TAB):
            if blank != self.sep:
                white |= b == blank
        filled = ~white
        if len(ends):
            starts = np.concatenate(([0], ends[:-1] + 1))
            rows = np.logical_or.reduceat(filled[: ends[-1] + 1], starts)
            rows[0] |= self.filled
            self._records(ends + self.offset, rows)
            self.filled = bool(filled[ends[-1] + 1 :].any())
        else:
            self.filled |= bool(filled.any())
        self.quotes += len(q)
        self.before = int(b[-1])
        self.offset += len(b)
        return True

    def _records(self, ends: np.ndarray, rows: np.ndarray) -> None:
        """Count the records ending at ``ends`` (file positions of their line feeds), cutting
        a part at the first record start at or after each nominal offset."""
        if self.header_end is None:
            first = np.flatnonzero(rows)
            if not len(first):
                return
            self.header_end = self.part_start = int(ends[first[0]]) + 1
            self.next_cut = self.header_end + self.part_bytes
            ends, rows = ends[first[0] + 1 :], rows[first[0] + 1 :]
            if not len(ends):
                return
        counts = np.cumsum(rows)
        done = 0  # records of this piece already counted into closed parts
        assert self.next_cut is not None
        while True:
            i = int(np.searchsorted(ends, self.next_cut - 1))  # first end + 1 >= cut
            if i >= len(ends):
                break
            stop = int(ends[i]) + 1
            taken = int(counts[i]) - (int(counts[done - 1]) if done else 0)
            self.cuts.append((self.part_start, stop, self.rows + taken))
            self.part_start, self.rows, done = stop, 0, i + 1
            gap = stop - self.header_end
            self.next_cut = self.header_end + (gap // self.part_bytes + 1) * self.part_bytes
        self.rows += int(counts[-1]) - (int(counts[done - 1]) if done else 0)

    def finish(self, size: int) -> None:
        """Close the last part at the end of the file (its last line may lack a line feed)."""
        if self.header_end is None:
            return
        if self.filled:
            self.rows += 1
        self.cuts.append((self.part_start, size, self.rows))
