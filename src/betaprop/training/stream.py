"""Step 6 on data larger than memory: training rows read part by part through a shuffle buffer.

A ``Stream`` is a list of parts (a Parquet row group, a CSV byte range, a block of ``.npy``
rows, an array in memory) and a function that reads one part as encoded arrays X (m, N_0),
D (m, N_Q). ``fit(net, stream)`` trains on it as ``fit(net, X, D)`` does on arrays, holding
at most one part, the shuffle buffer and a mini-batch:

- every epoch the parts are taken in a shuffled order (drawn from the run's generator);
- a buffer of S rows (``shuffle_buffer``) is filled from them; each mini-batch draws its B
  rows uniformly at random, without replacement, from the buffer, and the next rows of the
  current part take their places (tf.data's ``shuffle(S)`` and WebDataset's ``shuffle``);
- when the parts run out the buffer drains: its last rows fill the holes.

Every row is trained on exactly once an epoch, in mini-batches of B rows (the last one
shorter) as with arrays. The order is a random permutation, but not a uniform one: a row can
only come out once its part has been read, so rows of one part stay closer together than a
full shuffle would keep them (S >= n is a full shuffle). ``shuffle=False`` takes the parts
in their order and the rows as they come: then ``fit(net, stream)`` equals ``fit(net, X, D,
shuffle=False)`` on the parts put end to end.

Under K ranks (``comm=``) rank r streams only its own parts (those whose first row falls in
its n / K block) through a buffer of S / K rows and takes its share B_r of B rows a batch;
the K shares make one global batch, whose gradient is their weighted mean (one Allreduce,
``DataParallel.step``). A rank whose parts run out joins every reduction with stand-in
columns of weight 0 until the epoch's global batch count (the largest over ranks) ends. The
global batches are then random in the same way as one process's, but not the same ones: K
ranks equal one process in distribution, not to 1e-10. The epoch loop lives in
``training.stream_epochs``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["Stream", "ShuffleBuffer", "SHUFFLE_BUFFER", "PartRows", "owned_parts"]

Array = np.ndarray

# The default buffer: 16 384 rows (2.5 MiB for 40 float32 features). tf.data asks for the
# size; WebDataset's examples use 1 000-5 000 samples. A larger buffer shuffles more widely.
SHUFFLE_BUFFER = 16384


class Stream:
    """Training rows read part by part, for ``fit(net, Stream(...))``.

    Parameters
    ----------
    parts : sequence
        What ``read`` takes: one item a part (row groups, byte ranges, indices).
    read : callable
        ``read(part) -> (X, D)``: the part's encoded features (m, N_0) and targets (m, N_Q),
        as ``fit(net, X, D)`` takes them. Called once a part an epoch (and once more for
        the counting pass when ``rows`` is not given).
    rows : sequence of int, optional
        The number of rows of each part; counted by reading every part once if not given.
    shuffle_buffer : int
        S, the rows of the shuffle buffer (at least the batch size is used).
    preprocessing : optional
        The ``Preprocessing`` that encoded the parts (kept for the model file).
    """

    def __init__(
        self,
        parts: Sequence[Any],
        read: Callable[[Any], tuple[Array, Array]],
        *,
        rows: Sequence[int] | None = None,
        shuffle_buffer: int = SHUFFLE_BUFFER,
        preprocessing: Any = None,
    ) -> None:
        self.parts = list(parts)
        if not self.parts:
            raise ValueError("parts must hold at least one part, got none")
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, (int, np.integer)):
            raise ValueError(f"shuffle_buffer must be an integer >= 1, got {shuffle_buffer!r}")
        if shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be an integer >= 1, got {shuffle_buffer!r}")
        self.read = read
        self.shuffle_buffer = int(shuffle_buffer)
        self.preprocessing = preprocessing
        self._rows = None if rows is None else [int(count) for count in rows]
        if self._rows is not None and (len(self._rows) != len(self.parts) or min(self._rows) < 0):
            raise ValueError(
                f"rows must give a count >= 0 for each of the {len(self.parts)} parts, got "
                f"{list(rows or [])[:8]!r}"
            )

    @classmethod
    def from_arrays(
        cls, pieces: Sequence[tuple[Array, Array]], *, shuffle_buffer: int = SHUFFLE_BUFFER
    ) -> Stream:
        """A stream over arrays already in memory, one part a (X, D) pair (for tests and for
        data that arrive in pieces)."""
        held = [(np.asarray(X), np.asarray(D)) for X, D in pieces]
        return cls(
            range(len(held)),
            held.__getitem__,
            rows=[len(X) for X, _ in held],
            shuffle_buffer=shuffle_buffer,
        )

    @classmethod
    def from_file(cls, path: str, target: str | None = None, **options: Any) -> Stream:
        """A data file's rows (Parquet, CSV, ``.npy``) read in parts and encoded part by part,
        with a ``Preprocessing`` fitted in a first pass over the parts (``stream.preprocessing``;
        ``files.table_stream``: options ``task``, ``shuffle_buffer``, ``part_bytes``, ``sep``,
        ``outputs``, ``dtype``, ``impute``, ``indicator``, ``comm``). Only one part is held at
        a time."""
        from ..files.table_stream import table_stream

        return table_stream(path, target, **options)

    @property
    def rows(self) -> list[int]:
        """The rows of each part (counted by one pass over the parts when not given)."""
        if self._rows is None:
            self._rows = [len(self.read(part)[0]) for part in self.parts]
        return self._rows

    @property
    def n_rows(self) -> int:
        """n: the training rows of all parts."""
        return sum(self.rows)

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return (
            f"Stream({len(self.parts)} parts, {self.n_rows} rows, "
            f"shuffle_buffer={self.shuffle_buffer})"
        )

    def read_checked(self, k: int, widths: tuple[int, int], dtype: Any) -> tuple[Array, Array]:
        """Part k read and checked: X (m, N_0) and D (m, N_Q) in the network's dtype, m its
        rows. Every error names the part."""
        X, D = self.read(self.parts[k])
        X, D = np.asarray(X), np.asarray(D)
        if D.ndim == 1:
            D = D.reshape(-1, 1)
        m = self.rows[k]
        for name, array, width in (("X", X, widths[0]), ("D", D, widths[1])):
            if array.shape != (m, width):
                symbol = "N_0" if name == "X" else "N_Q"
                raise ValueError(
                    f"part {k} ({self.parts[k]!r}): {name} must have shape ({m}, {symbol} = "
                    f"{width}), got {array.shape}"
                )
        return np.asarray(X, dtype=dtype), np.asarray(D, dtype=dtype)

    def row_order(
        self,
        seed: int,
        epochs: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        ranks: tuple[int, int] = (0, 1),
        least: int = 1,
    ) -> list[list[Array]]:
        """The global row numbers (part rows counted in part order) of every mini-batch of
        ``epochs`` epochs of ``fit(net, stream, seed=seed, batch_size=batch_size, ...)``:
        what the stream draws, without training (to inspect the shuffle). On K ranks,
        ``ranks`` = (r, K): rank r's share of each global batch (empty once its rows run
        out); ``least`` = 2 for a network with batch normalisation."""
        from .stream_epochs import epoch_row_order

        return epoch_row_order(self, seed, epochs, batch_size, shuffle, ranks, least)


def owned_parts(rows: Sequence[int], rank: int, size: int) -> list[int]:
    """The parts of rank ``rank`` of ``size``: those whose first row falls in its block
    [r n / K, (r + 1) n / K) of the n rows (docs/distributed.md, "Ownership"). A rank may own
    none; every part has one owner."""
    n, firsts = sum(rows), np.concatenate([[0], np.cumsum(rows)[:-1]])
    return [k for k, first in enumerate(firsts) if min(first * size // max(n, 1), size - 1) == rank]


class PartRows:
    """The rows of some parts in a given order, taken k at a time: one part in memory.

    ``take(k)`` returns up to k rows as (X, D, global row numbers) pieces; an empty list
    once every part is used up. A part is read when its first row is needed and dropped
    when its last row is taken.
    """

    def __init__(self, stream: Stream, order: Sequence[int], widths: tuple[int, int], dtype: Any):
        self.stream, self.order, self.widths, self.dtype = stream, list(order), widths, dtype
        self.offsets = np.concatenate([[0], np.cumsum(stream.rows)])  # first global row
        self.X: Array | None = None  # the part being taken, and its targets
        self.D: Array | None = None
        self.next_part, self.first, self.used = 0, 0, 0

    def take(self, k: int) -> list[tuple[Array, Array, Array]]:
        pieces: list[tuple[Array, Array, Array]] = []
        while k > 0:
            if self.X is None or self.used == len(self.X):
                if not self._open_next():
                    break
            assert self.X is not None and self.D is not None
            stop = min(self.used + k, len(self.X))
            rows = np.arange(self.first + self.used, self.first + stop)
            pieces.append((self.X[self.used : stop], self.D[self.used : stop], rows))
            k -= stop - self.used
            self.used = stop
        return pieces

    def _open_next(self) -> bool:
        self.X = self.D = None  # the finished part can go before the next one is read
        while self.next_part < len(self.order):
            k = self.order[self.next_part]
            self.next_part += 1
            if self.stream.rows[k]:
                self.X, self.D = self.stream.read_checked(k, self.widths, self.dtype)
                self.first, self.used = int(self.offsets[k]), 0
                return True
        return False


class ShuffleBuffer:
    """S rows (X, D and their global numbers) from which mini-batches are drawn at random.

    ``fill(rows)`` tops it up to S rows; ``draw(rng, m, rows, x, d, ids)`` writes m rows
    drawn uniformly without replacement into the first m rows of x, d and ids (buffers
    allocated once) and puts the next m rows of ``rows`` in their slots; once ``rows`` is
    used up the buffer's last rows move into the holes, so its rows stay 0..filled-1.
    """

    def __init__(self, capacity: int, widths: tuple[int, int], dtype: Any) -> None:
        self.X = np.empty((capacity, widths[0]), dtype=dtype)
        self.D = np.empty((capacity, widths[1]), dtype=dtype)
        self.ids = np.empty(capacity, dtype=np.int64)
        self.filled = 0

    def fill(self, rows: PartRows) -> None:
        for X, D, ids in rows.take(len(self.X) - self.filled):
            stop = self.filled + len(X)
            self.X[self.filled : stop], self.D[self.filled : stop] = X, D
            self.ids[self.filled : stop] = ids
            self.filled = stop

    def draw(
        self, rng: np.random.Generator, m: int, rows: PartRows, x: Array, d: Array, ids: Array
    ) -> None:
        slots = rng.choice(self.filled, m, replace=False)  # Floyd's algorithm for m << S
        np.take(self.X, slots, axis=0, out=x[:m])
        np.take(self.D, slots, axis=0, out=d[:m])
        np.take(self.ids, slots, out=ids[:m])
        start = 0
        for X, D, numbers in rows.take(m):  # the next rows take the drawn rows' slots
            into = slots[start : start + len(X)]
            self.X[into], self.D[into], self.ids[into] = X, D, numbers
            start += len(X)
        if start < m:  # no rows left: the last rows of the buffer fill the holes
            self._close(slots[start:])

    def _close(self, holes: Array) -> None:
        filled = self.filled - len(holes)
        low = holes[holes < filled]  # holes the shrunken buffer keeps
        tail = np.ones(self.filled - filled, dtype=bool)
        tail[holes[holes >= filled] - filled] = False
        movers = filled + np.flatnonzero(tail)  # rows beyond the new end that are kept
        self.X[low], self.D[low], self.ids[low] = self.X[movers], self.D[movers], self.ids[movers]
        self.filled = filled


def fifo(rows: PartRows, m: int, x: Array, d: Array, ids: Array) -> None:
    """``shuffle=False``: the next m rows as they come, into x, d and ids."""
    start = 0
    for X, D, numbers in rows.take(m):
        stop = start + len(X)
        x[start:stop], d[start:stop], ids[start:stop] = X, D, numbers
        start = stop
    assert start == m, "the parts held fewer rows than their counts"


def batch_plan(n: int, b: int, merge_single: bool) -> tuple[int, int]:
    """(mini-batches, rows of the last) for n rows taken b at a time; with ``merge_single``
    a last batch of one row joins the batch before (batch normalisation needs two)."""
    if n == 0:
        return 0, 0
    count = -(-n // b)
    last = n - (count - 1) * b
    if merge_single and count > 1 and last == 1:
        return count - 1, b + 1
    return count, last


def batch_rows(plan: tuple[int, int], b: int, j: int) -> int:
    """The rows of mini-batch j (from 0) under ``plan`` (``batch_plan``); 0 past its end."""
    count, last = plan
    return 0 if j >= count else last if j == count - 1 else b
