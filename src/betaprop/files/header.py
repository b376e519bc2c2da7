"""A CSV file's header, read and checked before its body is parsed: the first record,
however long (``header_record``), its names (``check_header``), and files that are no UTF-8 CSV
text refused by what they are (``not_csv``)."""

from __future__ import annotations

import csv
import io
from typing import Any

from .errors import DataError
from .streams import CHUNK, HEAD, MAX_DECOMPRESSED, decoded

__all__ = ["check_header", "header_record", "not_csv", "FORMATS"]


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
        if "\n" in name or "\r" in name:
            raise DataError(
                f"{path} line 1: the name of column {i + 1} holds a line break ({name!r}); "
                "column names must be on one line"
            )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"{path} line 1: the column name {name!r} appears twice")
        seen.add(name)


FORMATS = "CSV (any separator: --sep; .tsv is tab-separated), gzip-compressed CSV, or Parquet"
JSON_STARTS = {(b"{", b'"'), (b"[", b"{"), (b"[", b"[")}  # an object, a list of them, of lists
JSON_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")


def not_csv(head: bytes, path: str) -> None:
    """Refuse, in one line that says what the file is, a file that is no UTF-8 CSV text:
    JSON (by its suffix or its first characters), UTF-16 or UTF-32 text (by its byte-order
    mark, or by every other byte being NUL), any other file holding NUL bytes."""
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    first, second = start[:1], start[1:].lstrip()[:1]
    if path.lower().endswith(JSON_SUFFIXES) or (first, second) in JSON_STARTS:
        raise DataError(
            f"{path}: JSON is not a table format betaprop reads; it reads {FORMATS}: save "
            "the table as one of them (pandas: read_json(...).to_csv('data.csv', index=False))"
        )
    encoding = None
    if head[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        encoding = "UTF-32"
    elif head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "UTF-16"
    elif b"\x00" in head:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        if max(even, odd) >= len(head) // 4 and min(even, odd) == 0:  # ASCII in 2 bytes
            encoding = "UTF-16"
        else:
            raise DataError(f"{path}: not a CSV text file (it contains NUL bytes)")
    if encoding is not None:
        raise DataError(
            f"{path}: the file is {encoding} text; betaprop reads UTF-8: save it as UTF-8 CSV "
            f"(a spreadsheet's 'CSV UTF-8', or iconv -f {encoding} -t UTF-8)"
        )


def header_record(
    stream: Any, head: bytes, path: str, sep: str | None, size: int | None
) -> list[str]:
    """The cells of the first non-blank record, read as far as it goes: from ``head`` (the
    first ``HEAD`` bytes), then 4 times as many bytes at a time, within the file's ``size``
    (None: compressed, within ``MAX_DECOMPRESSED``). A header of 100 000 columns is longer
    than any fixed head; a quoted name may hold a line break (refused by ``check_header``)."""
    import zlib

    want, text = HEAD, bytearray(head)
    while True:
        final = len(text) < want or want > MAX_DECOMPRESSED
        cells = _first_record(decoded(text, path, final), path, sep, final)
        if cells is not None:
            return cells
        want = min(want * 4, MAX_DECOMPRESSED + 1 if size is None else size + 1)
        try:
            stream.seek(len(text))  # open_table rewound it
            while len(text) < want and (piece := stream.read(min(CHUNK, want - len(text)))):
                text += piece
        except (OSError, EOFError, zlib.error) as error:  # BadGzipFile is an OSError
            raise DataError(f"{path}: damaged compressed file ({error})") from None


def _first_record(text: str, path: str, sep: str | None, final: bool) -> list[str] | None:
    """The first non-blank record of ``text``; None when ``text``, not ``final``, may end
    inside it (a record is complete when another one follows it)."""
    # io.StringIO(newline=""): csv's own line ends only, as read_rows
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep or ",")
    try:
        for cells in reader:
            if cells and not (len(cells) == 1 and not cells[0].strip()):
                break
        else:
            if final:
                raise DataError(f"{path} is empty: expected a header row and data rows")
            return None
    except csv.Error as error:  # a quote left open: cut by the head's end, or malformed
        if final:
            raise DataError(f"{path} line 1: malformed CSV header ({error})") from None
        return None
    if final:
        return cells
    try:
        next(reader)
    except StopIteration:
        return None  # it may go on past the head's end
    except csv.Error:
        pass  # the next record is malformed: the body's reader will say where
    return cells
