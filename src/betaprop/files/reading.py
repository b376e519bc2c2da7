"""Reading a data file: only regular files, within bounds, a header checked before the body.

``read_table`` reads CSV (TSV, any separator, gzip-compressed) with pandas' C parser and
Parquet with pyarrow; ``read_rows`` is the strict reader, slow but naming the line, column
and value of every problem, which ``refuse`` runs only to word a refusal.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

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
]


class DataError(ValueError):
    """A data file or data set name that cannot be used; the message is one line."""


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
        raise DataError(f"{path}: not a CSV text file (it contains NUL bytes)")
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


def check_header(path: str, header: list[str], raw_header: str, sep: str | None) -> None:
    """A header of distinct, non-empty names; a ';'- or tab-separated file is named as such."""
    if len(header) == 1 and sep is None:
        for separator, word in ((";", "';'"), ("\t", "tab")):
            if raw_header.count(separator) >= 1:
                raise DataError(
                    f"{path} looks {word}-separated (its header has no ',' but "
                    f"{raw_header.count(separator)} {word}); betaprop reads comma-separated "
                    f"CSV by default: give --sep {'tab' if separator == chr(9) else separator!r}"
                    " or save the file with ',' as the separator"
                )
    for i, name in enumerate(header):
        if not name:
            raise DataError(f"{path} line 1: column {i + 1} of the header has no name")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path} line 1: the column name {name!r} appears twice")
        seen.add(name)


# Files are opened only when they are regular files (a FIFO would block, /dev/zero never ends)
# and are read within their size; a compressed file within MAX_DECOMPRESSED bytes.
MAX_DECOMPRESSED = 16 * 1024**3
HEAD = 65536


def open_data(path: str) -> tuple[Any, int]:
    """A regular file opened for reading and its size, or a one-line DataError."""
    from .container import open_regular

    return open_regular(path, DataError, "data file", folder="is a folder, not a CSV file")


def decoded(blob: bytes, path: str, final: bool) -> str:
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if not final and error.start >= len(blob) - 3:  # a character cut by the head's end
            return blob[: error.start].decode("utf-8-sig")
        raise DataError(
            f"{path}: not a UTF-8 text file (byte {error.start} cannot be decoded); "
            "save it as UTF-8 CSV"
        ) from None


def whole_text(path: str) -> str:
    """The whole text of a (possibly gzip-compressed) file, bounded, for the strict reader."""
    handle, size = open_data(path)
    with handle:
        stream = uncompressed(handle, path)
        blob = stream.read(MAX_DECOMPRESSED + 1)
    if len(blob) > MAX_DECOMPRESSED:
        raise DataError(f"{path}: more than {MAX_DECOMPRESSED} bytes once decompressed")
    return decoded(blob, path, final=True)


def uncompressed(handle: Any, path: str) -> Any:
    """``handle`` itself, or a gzip stream over it when the file starts with gzip's magic."""
    start = handle.read(2)
    handle.seek(0)
    if start == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=handle, mode="rb")
    return handle


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
        if b"\x00" in head:
            raise DataError(f"{path}: not a CSV text file (it contains NUL bytes)")
        text = decoded(head, path, final=len(head) < HEAD)
        first = [line for line in io.StringIO(text, newline="") if line.strip()][:1]
        if not first:
            if len(head) < HEAD:
                raise DataError(f"{path} is empty: expected a header row and data rows")
            refuse(path, sep, lambda *a: None, "no header row in its first 64 KiB")
        header_cells = next(csv.reader(first, delimiter=sep or ","))
        header = [c.strip() for c in header_cells]
        check_header(path, header, (sep or ",").join(header_cells), sep)
        yield stream, header, sep or ","


def parse_csv(stream: Any, sep: str, chunksize: int | None = None, text: Sequence[int] = ()) -> Any:
    """pandas' C parser on a CSV byte stream: every cell as written (no NaN guessing),
    numbers parsed by the parser itself (exactly: tests/test_faults_files.py) except in the
    columns at positions ``text``, kept as written; a frame, or with ``chunksize`` an
    iterator of frames."""
    import pandas as pd

    return pd.read_csv(
        stream,
        sep=sep,
        engine="c",
        na_filter=False,
        encoding="utf-8-sig",
        skip_blank_lines=True,
        skipinitialspace=False,
        chunksize=chunksize,
        dtype={position: str for position in text} or None,
    )


def read_table(path: str, sep: str | None = None, text: Sequence[str] = ()) -> Any:
    """A CSV (or TSV, ``sep``-separated, gzip-compressed) or Parquet file as a pandas DataFrame
    (CSV: columns of numbers as float or int, any other column and the columns named in
    ``text`` as text, every cell as written; Parquet: the file's own types).

    CSV is read by pandas' C parser; Parquet by pyarrow. Only regular files are opened; the
    header is checked (names, separator) before the body is parsed. Raises ``DataError``.
    """
    with open_table(path, sep) as (stream, header, sep):
        if header is None:
            return _read_parquet(stream, path)
        try:
            positions = [i for i, name in enumerate(header) if name in text]
            frame = parse_csv(stream, sep, text=positions)
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


def _read_parquet(handle: Any, path: str) -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow: pip install 'betaprop[parquet]'"
        ) from None
    try:
        frame = pq.read_table(handle).to_pandas()
    except Exception as error:  # pyarrow's ArrowInvalid, OSError, ...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: not a readable Parquet file ({first})") from None
    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataError(f"{path} has no rows or no columns")
    names = [str(c).strip() for c in frame.columns]
    check_header(path, names, ",".join(names), ",")
    frame.columns = names
    return frame
