"""The bytes of a CSV file scanned for record starts: one piece, one rank's range, the plan.

``Piece`` finds the record ends of a piece of bytes given the parity of the quotes before it
(a line feed after an even number of quote characters ends a record), which records hold a
non-blank byte (rows: pandas skips blank and whitespace-only lines), and whether its quotes
follow RFC 4180 (a quote opens a field, closes it, or is doubled). ``files.parts`` scans a
file piece by piece in one process; under K ranks (``plan_ranges``) each rank scans its
own range of bytes for both parities, an exclusive scan of the ranks' quote counts picks
each range's parity, and ``assemble`` puts the ranges' record ends and row counts together
into the same cuts the one-process scan finds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Piece", "RangeScan", "assemble", "ranges"]

Array = np.ndarray
QUOTE, LF, CR, SPACE, TAB = 34, 10, 13, 32, 9
END = 256  # "no byte": past the end of the file


class Piece:
    """One piece of bytes ``b`` (uint8), the byte ``before`` it and the byte ``after`` it."""

    def __init__(self, b: Array, before: int, after: int, sep: int) -> None:
        self.sep = sep
        self.q = np.flatnonzero(b == QUOTE)
        q = self.q
        self.prev = np.where(q > 0, b[q - 1], before).astype(np.int16)
        self.next = np.where(q + 1 < len(b), b[np.minimum(q + 1, len(b) - 1)], after)
        cr = np.flatnonzero(b == CR)
        cr_next = np.where(cr + 1 < len(b), b[np.minimum(cr + 1, len(b) - 1)], after)
        self.lone_cr = bool((cr_next != LF).any())
        self.lf = np.flatnonzero(b == LF)
        white = (b == LF) | (b == CR)
        for blank in (SPACE, TAB):
            if blank != sep:
                white |= b == blank
        self.filled = ~white
        self.size = len(b)

    def records(self, parity: int) -> tuple[bool, Array, Array, bool]:
        """With ``parity`` quotes (mod 2) before the piece: whether its quotes follow RFC 4180,
        its record ends (positions in the piece), whether each of those records holds a
        non-blank byte within the piece, and whether any byte after the last end does."""
        opening = (parity + np.arange(len(self.q))) % 2 == 0
        valid = not self.lone_cr
        valid = valid and bool(np.isin(self.prev[opening], (self.sep, LF, QUOTE)).all())
        valid = valid and bool(np.isin(self.next[~opening], (self.sep, CR, LF, QUOTE, END)).all())
        ends = self.lf[(parity + np.searchsorted(self.q, self.lf)) % 2 == 0]
        if not len(ends):
            return valid, ends, np.zeros(0, dtype=bool), bool(self.filled.any())
        starts = np.concatenate(([0], ends[:-1] + 1))
        rows = np.logical_or.reduceat(self.filled[: ends[-1] + 1], starts)
        return valid, ends, rows, bool(self.filled[ends[-1] + 1 :].any())


@dataclass
class Records:
    """What one rank's range [start, stop) holds under one parity of the quotes before it."""

    valid: bool = True
    first_end: int | None = None  # position of the first record end
    head_filled: bool = False  # the first record holds a non-blank byte in the range
    last_end: int | None = None
    tail_filled: bool = False  # a non-blank byte after the last end (or in a range without)
    total: int = 0  # records ending in the range with a non-blank byte in it
    # per nominal offset N in the range: the first end >= N - 1 and the records counted up
    # to it (None, None: no end after N - 1 in the range)
    marks: list[tuple[int, int | None, int | None]] = field(default_factory=list)

    def add(self, ends: Array, rows: Array, tail: bool, nominal: list[int]) -> None:
        """The records of the next piece (``ends``: file positions); ``nominal``: offsets
        still without a mark (consumed as they are marked)."""
        if not len(ends):
            self.tail_filled |= tail
            return
        rows = rows.copy()
        rows[0] |= self.tail_filled
        if self.first_end is None:
            self.first_end, self.head_filled = int(ends[0]), bool(rows[0])
        counts = self.total + np.cumsum(rows)
        while nominal:
            i = int(np.searchsorted(ends, nominal[0] - 1))
            if i == len(ends):
                break
            self.marks.append((nominal.pop(0), int(ends[i]), int(counts[i])))
        self.total = int(counts[-1])
        self.last_end, self.tail_filled = int(ends[-1]), tail


class RangeScan:
    """One rank's range of bytes [start, stop) scanned under both parities."""

    def __init__(self, start: int, stop: int, sep: int, nominal: list[int]) -> None:
        self.start, self.stop, self.sep = start, stop, sep
        self.quotes = 0
        self.nominal = [list(nominal), list(nominal)]
        self.records = [Records(), Records()]

    def scan(self, handle: Any, piece_bytes: int, size: int) -> None:
        handle.seek(self.start - 1)
        before = handle.read(1)[0]
        offset = self.start
        while offset < self.stop:
            b = np.frombuffer(handle.read(min(piece_bytes, self.stop - offset)), dtype=np.uint8)
            after = handle.read(1)
            handle.seek(offset + len(b))
            piece = Piece(b, before, after[0] if after else END, self.sep)
            for parity in (0, 1):
                valid, ends, rows, tail = piece.records((parity + self.quotes) % 2)
                self.records[parity].valid &= valid
                self.records[parity].add(ends + offset, rows, tail, self.nominal[parity])
            self.quotes += len(piece.q)
            before, offset = int(b[-1]), offset + len(b)
        for parity in (0, 1):
            self.records[parity].marks += [(n, None, None) for n in self.nominal[parity]]


def ranges(header_end: int, size: int, part_bytes: int, ranks: int) -> list[tuple[int, int]]:
    """Rank r's bytes: the nominal blocks of ``part_bytes`` after the header, split in K
    contiguous runs (a rank may have none)."""
    blocks = -(-(size - header_end) // part_bytes)
    cut = [r * blocks // ranks for r in range(ranks + 1)]
    return [
        (header_end + cut[r] * part_bytes, min(header_end + cut[r + 1] * part_bytes, size))
        for r in range(ranks)
    ]


def assemble(
    header_end: int, size: int, scans: list[tuple[int, int, int, list[Records]]]
) -> list[tuple[int, int, int]] | None:
    """The cuts (start, stop, rows) from each rank's (start, stop, quotes, records by
    parity), in rank order; None when some range breaks RFC 4180 (one part)."""
    cuts: list[tuple[int, int, int]] = []
    begin, rows, carry, pending, parity = header_end, 0, False, False, 0
    last_end: int | None = header_end - 1  # the header's line feed
    for start, stop, quotes, both in scans:
        if start >= stop:
            continue
        seen = both[parity]
        parity = (parity + quotes) % 2
        if not seen.valid:
            return None
        extra = int(carry and not seen.head_filled)  # a first record begun before the range
        points: list[tuple[int, int]] = []  # (cut, records counted before it)
        if pending and seen.first_end is not None:
            points.append((seen.first_end + 1, int(seen.head_filled) + extra))
            pending = False
        for nominal, end, counted in seen.marks:
            if nominal == start and last_end == start - 1:
                points.insert(0, (start, 0))
            elif end is None or counted is None:
                pending = True
            else:
                points.append((end + 1, counted + extra))
        before = 0
        for cut, counted in points:
            if cut > begin:
                cuts.append((begin, cut, rows + counted - before))
                begin, rows, before = cut, 0, counted
        if seen.first_end is None:
            carry = carry or seen.tail_filled
        else:
            rows += seen.total + extra - before
            carry = seen.tail_filled
        last_end = seen.last_end
    cuts.append((begin, size, rows + int(carry)))
    return cuts
