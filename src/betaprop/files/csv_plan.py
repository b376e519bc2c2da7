"""A CSV file's parts planned by K ranks together: each scans 1/K of the bytes.

Every rank finds the header's end (the first non-blank record, read from the start), takes
its contiguous run of nominal blocks of ``part_bytes`` (``csv_scan.ranges``), and scans it
under both parities of the quotes before it (``csv_scan.RangeScan``); the ranks' results are
gathered, each range's parity follows from the quote counts of the ranges before it (an
exclusive scan), and ``csv_scan.assemble`` gives every rank the cuts that one process finds
scanning the whole file (tests/test_parts_ranks.py). A range that breaks RFC 4180 makes the
whole file one part, as in one process.
"""

from __future__ import annotations

from typing import Any

from .csv_scan import RangeScan, assemble, ranges
from .errors import DataError
from .parts import _SCAN, Part, header_end, parts_of

__all__ = ["plan_csv_ranks", "scan_range"]


def scan_range(
    handle: Any, size: int, sep: str, part_bytes: int, header: int, rank: int, ranks: int
) -> tuple[int, int, int, list[Any]]:
    """Rank ``rank``'s range scanned: (start, stop, quotes, records by parity)."""
    start, stop = ranges(header, size, part_bytes, ranks)[rank]
    nominal = [x for x in range(start, stop, part_bytes) if x > header]
    scan = RangeScan(start, stop, ord(sep), nominal)
    if start < stop:
        scan.scan(handle, _SCAN, size)
    return start, stop, scan.quotes, scan.records


def plan_csv_ranks(
    handle: Any, size: int, path: str, sep: str, part_bytes: int, agreement: Any
) -> list[Part]:
    """``plan_parts`` of an uncompressed CSV file by the ranks of ``agreement`` together."""
    whole = [Part(0, "csv", 0, None, 0, None)]
    if len(sep.encode()) != 1:
        return whole
    header = header_end(handle, size, sep)
    if header is None:
        return whole
    if header >= size:
        raise DataError(f"{path} has a header row but no data rows")
    try:
        local: Any = scan_range(handle, size, sep, part_bytes, header, agreement.rank,
                                agreement.size)  # fmt: skip
    except OSError as error:  # every rank must reach the gather
        local = f"{path}: cannot be read ({error})"
    scans = agreement.gather(local)
    failed = [s for s in scans if isinstance(s, str)]
    if failed:
        raise DataError(failed[0])
    cuts = assemble(header, size, scans)
    return whole if cuts is None else parts_of(cuts, header, path)
