"""Reading a data file: only regular files, within bounds, a header checked before the body.

``read_table`` reads CSV (TSV, any separator, gzip-compressed) with pandas' C parser and
Parquet with pyarrow; ``read_rows`` is the strict reader, slow but naming the line, column
and value of every problem, which ``refuse`` runs only to word a refusal.
A file's bytes (bounded, decompressed, decoded) come from ``files.streams``, its CSV header
from ``files.header``; ``DataError`` is ``files.errors``'.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .errors import DataError, first_line

# `name as name`: re-exported, this module's names before streams.py and header.py
from .header import FORMATS as FORMATS
from .header import JSON_STARTS as JSON_STARTS
from .header import JSON_SUFFIXES as JSON_SUFFIXES
from .header import check_header, header_record, not_csv
from .streams import CHUNK as CHUNK
from .streams import HEAD, MAX_DECOMPRESSED, open_data, uncompressed, whole_text
from .streams import decoded as decoded
from .streams import whole_bytes as whole_bytes

__all__ = [
    "DataError",
    "read_table",
    "open_table",
    "parse_csv",
    "read_rows",
    "refuse",
    "check_header",
    "HEAD",
    "MAX_DECOMPRESSED",
    "too_large",
]


def read_rows(
    path: str, text: str | None = None, sep: str | None = None
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, cells) of every non-blank row; a UTF-8 BOM is skipped.

    The strict reader: slow, but it names the line of every problem. ``read_csv`` reads with
    pandas and comes here only to word a refusal (``_refuse``).
    """
    if text is None:
        text = whole_text(path)
    if "\x00" in text:
        raise DataError(f"{path}: not a CSV text file (it contains NUL bytes)")  # past the head
    # io.StringIO(newline=""): csv's own line ends only, so a form feed is no line break
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep or ",")
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    raw_header = ""
    try:
        for cells in reader:
            if not cells or all(not c.strip() for c in cells) and len(cells) == 1:
                continue  # blank line
            if header is None:
                header = [c.strip() for c in cells]
                raw_header = (sep or ",").join(cells)
            else:
                rows.append((reader.line_num, cells))
    except csv.Error as error:
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({error})") from None
    if header is None:
        raise DataError(f"{path} is empty: expected a header row and data rows")
    check_header(path, header, raw_header, sep)
    if not rows:
        raise DataError(f"{path} has a header row but no data rows")
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(
                f"{path} line {line} has {len(cells)} fields, but the header has {len(header)}"
            )
    return header, rows


def refuse(path: str, sep: str | None, check: Any, fallback: str | None) -> None:
    """Raise the strict reader's message for the first problem (line, column, value); the
    ``fallback`` when it finds none (with None: return). ``check(header, line, cells)``
    words the cell problems."""
    import gzip
    import zlib

    try:
        header, rows = read_rows(path, sep=sep)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: damaged compressed file ({error})") from None
    for line, cells in rows:
        check(header, line, cells)
    if fallback is not None:
        raise DataError(f"{path}: {fallback}")


@contextlib.contextmanager
def open_table(path: str, sep: str | None = None) -> Iterator[tuple[Any, list[str] | None, str]]:
    """The opened file as (stream, header, separator), closed on leaving: for CSV the
    (decompressed) byte stream at its start, its header checked (names, separator) before
    the body is parsed; for Parquet the raw file and header None. Raises ``DataError``."""
    import zlib

    handle, size = open_data(path)
    with handle:
        head = handle.read(HEAD)
        handle.seek(0)
        if head[:4] == b"PAR1" or path.endswith(".parquet"):
            yield handle, None, sep or ","
            return
        if sep is None and (path.endswith(".tsv") or path.endswith(".tsv.gz")):
            sep = "\t"
        stream = uncompressed(handle, path)
        if stream is not handle:
            try:
                head = stream.read(HEAD)
                stream.seek(0)
            except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
                raise DataError(f"{path}: damaged compressed file ({error})") from None
        not_csv(head, path)
        header_cells = header_record(stream, head, path, sep, size if stream is handle else None)
        stream.seek(0)
        header = [c.strip() for c in header_cells]
        check_header(path, header, (sep or ",").join(header_cells), sep)
        yield stream, header, sep or ","


def parse_csv(
    stream: Any,
    sep: str,
    chunksize: int | None = None,
    text: Sequence[int] = (),
    decimal: str = ".",
    thousands: str | None = None,
) -> Any:
    """pandas' C parser on a CSV byte stream: every cell as written (no NaN guessing),
    numbers parsed by the parser itself (exactly: tests/test_faults_files.py) except in the
    columns at positions ``text``, kept as written; a frame, or with ``chunksize`` an
    iterator of frames. ``decimal`` and ``thousands`` are pandas' (a locale's numbers:
    "1.205,37" with ``decimal=","``, ``thousands="."``). A first row with one field more
    than the header raises ValueError (pandas would read every column shifted); the chunks of
    a ``chunksize`` read are checked by their reader (``shifted``)."""
    import pandas as pd

    frame = pd.read_csv(
        stream,
        sep=sep,
        engine="c",
        na_filter=False,
        encoding="utf-8-sig",
        skip_blank_lines=True,
        skipinitialspace=False,
        chunksize=chunksize,
        dtype={position: str for position in text} or None,
        decimal=decimal,
        thousands=thousands,
    )
    if chunksize is None and shifted(frame):
        raise ValueError("its first row has more fields than the header")
    return frame


def shifted(frame: Any, first: int = 0) -> bool:
    """Whether pandas took the first column as the index of ``frame`` (a read, or its chunk
    whose rows start at ``first``): it does so, silently, when the first row has one field
    more than the header, and every column then holds its neighbour's values. Such a file is
    refused (the strict reader names the line), never read shifted; only an index column
    holding the row numbers themselves (an unnamed index written by pandas) reads as a
    row index would."""
    import pandas as pd

    index = frame.index  # pandas makes a RangeIndex of any evenly spaced integers
    return not (isinstance(index, pd.RangeIndex) and index.step == 1 and index.start == first)


def read_table(
    path: str,
    sep: str | None = None,
    text: Sequence[str] = (),
    decimal: str = ".",
    thousands: str | None = None,
) -> Any:
    """A CSV (or TSV, ``sep``-separated, gzip-compressed) or Parquet file as a pandas DataFrame
    (CSV: columns of numbers as float or int, any other column and the columns named in
    ``text`` as text, every cell as written, numbers in the locale of ``decimal`` and
    ``thousands``; Parquet: the file's own types, the frame's ``attrs["format"]`` "parquet").

    CSV is read by pandas' C parser; Parquet by pyarrow. Only regular files are opened; the
    header is checked (names, separator) before the body is parsed. Raises ``DataError``.
    """
    with open_table(path, sep) as (stream, header, sep):
        if header is None:
            return _read_parquet(stream, path)
        try:
            positions = [i for i, name in enumerate(header) if name in text]
            frame = parse_csv(stream, sep, text=positions, decimal=decimal, thousands=thousands)
        except MemoryError:
            raise  # the caller words it (too_large), once pandas' buffers are gone
        except UnicodeDecodeError:
            refuse(path, sep, lambda *a: None, "not a UTF-8 text file")
        except Exception as error:  # pandas' ParserError, EmptyDataError, gzip errors, ...
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            refuse(path, sep, lambda *a: None, f"malformed CSV ({first_line})")
    frame.columns = header
    mixed = [name for name in frame.columns if frame[name].dtype == np.dtype("O")]
    for name in mixed:  # parsed in chunks, numbers in some and text in others
        frame[name] = frame[name].astype(str)
    if len(frame) == 0:
        raise DataError(f"{path} has a header row but no data rows")
    return frame


RAGGED_CHUNK = 4 * 1024**2  # bytes counted at a time by ``maybe_ragged``


def maybe_ragged(path: str, sep: str | None) -> bool:
    """False when every non-blank line of the (decompressed) file has as many separators as
    its header, counted with NumPy in pieces of ``RAGGED_CHUNK`` bytes (memory: a few times
    that); True when some line has not, or when the file holds a quote (a quoted field may hold
    a separator or a line break: only the strict reader can tell). A gap in a CSV file may be
    a short row; this is what decides whether the strict reader must read it all again."""
    counted: list[int] = []  # the header's separators
    carry = length = 0  # separators and bytes of the line cut by a piece's end
    with open_table(path, sep) as (stream, header, separator):
        if header is None:
            return False  # Parquet: no lines
        mark = ord(separator)
        while piece := stream.read(RAGGED_CHUNK):
            buffer = np.frombuffer(piece, dtype=np.uint8)
            if (buffer == ord('"')).any():
                return True
            ends = np.flatnonzero(buffer == ord("\n"))
            # the line of each separator: how many line ends come before it
            lines = np.searchsorted(ends, np.flatnonzero(buffer == mark))
            counts = np.bincount(lines, minlength=len(ends) + 1)
            per_line, tail = counts[: len(ends)], int(counts[len(ends)])
            if len(ends):
                per_line[0] += carry
                sizes = np.diff(np.concatenate(([-1], ends)))
                sizes[0] += length
                if not counted:
                    counted.append(int(per_line[0]))  # the header's
                # a line of at most "\r" with no separator is blank: pandas skips it
                real = (per_line > 0) | (sizes > 2)
                if (per_line[real] != counted[0]).any():
                    return True
                carry = tail
                length = len(buffer) - 1 - int(ends[-1])
            else:
                carry += tail
                length += len(buffer)
        if counted and (carry > 0 or length > 1) and carry != counted[0]:
            return True  # the last line, without a line end
    return False


def too_large(path: str, sep: str | None, itemsize: int) -> DataError:
    """The refusal of a table that does not fit in memory, with the estimate of what its
    matrix alone needs: rows x columns x ``itemsize``. The rows are counted (line ends, in
    1 MiB pieces of the decompressed text; a Parquet file's metadata), after the failed
    read has let go of its memory."""
    import gzip
    import zlib

    rows = columns = 0
    try:
        with open_table(path, sep) as (stream, header, sep):
            if header is None:
                import pyarrow.parquet as pq

                meta = pq.ParquetFile(stream).metadata
                rows, columns = meta.num_rows, meta.num_columns
            else:
                columns = len(header)
                while piece := stream.read(1 << 20):
                    rows += piece.count(b"\n")
                rows -= 1  # the header
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ImportError, MemoryError):
        pass  # the estimate so far
    need = max(rows, 0) * columns * itemsize
    estimate = (
        f"{rows:,} rows x {columns:,} columns need about {need / 1024**3:.2f} GiB as "
        f"{itemsize}-byte numbers, "
        if need > 0
        else ""  # the file could not be counted again
    )
    return DataError(
        f"{path}: the data does not fit in memory: {estimate}more than this process could "
        "allocate; use a machine with more memory, or fewer rows"
    )


def parquet_module(path: str) -> Any:
    """``pyarrow.parquet``, or a one-line ``DataError`` naming the extra that installs it."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow: pip install 'betaprop[parquet]'"
        ) from None
    return pq


def _read_parquet(handle: Any, path: str) -> Any:
    pq = parquet_module(path)
    import pyarrow as pa

    try:
        table = pq.read_table(handle)
    except Exception as error:  # pyarrow's ArrowInvalid, OSError, ...
        first = first_line(error)
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    for column in table.schema:
        kind = column.type
        if pa.types.is_dictionary(kind):
            kind = kind.value_type
        if pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
            raise DataError(
                f"{path}: column {column.name!r} holds {column.type} values, not numbers or "
                "text; betaprop reads one value per cell: flatten it into columns, or leave it "
                "out with --drop"
            )
    frame = table.to_pandas()
    frame.attrs["format"] = "parquet"  # no lines: problems are named by row
    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataError(f"{path} has no rows or no columns")
    names = [str(c).strip() for c in frame.columns]
    check_header(path, names, ",".join(names), ",")
    frame.columns = names
    return frame
