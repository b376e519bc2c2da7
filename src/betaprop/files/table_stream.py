"""A data file as a ``Stream`` of parts (``files.parts``), encoded part by part.

``table_stream(path)`` plans the file's parts (Parquet row groups, CSV byte ranges, ``.npy``
row ranges), then fits the ``Preprocessing`` in a pass over them with
``Preprocessing.fit_parts`` (``files.agreement``): what one process fits on the whole table,
means and scales combined with Chan et al.'s pairwise update, categories, classes, most
frequent values and medians exactly (a median takes a few more passes). Training then reads
each part again, every epoch, and encodes it: imputed, one-hot, (x - mean) / scale, targets
one-hot or scaled. Only one part is held at a time.

A ``.npy`` array's last column is the target, the others its features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..training.stream import SHUFFLE_BUFFER, Stream
from .frames import Dataset, from_frame
from .parts import PART_BYTES, Part, plan_parts, read_part
from .preprocessing import Preprocessing
from .statistics import column_statistics

__all__ = ["table_stream", "TableStream", "Moments"]

Array = np.ndarray

# (x - mean) / scale is computed in float64 in one scratch of at most this many bytes, block
# after block: no temporaries a block (8 192-row blocks through transform took four of up to
# 2.6 MiB, each an mmap, its page faults and a munmap under train --stream's fixed mmap
# threshold, cli.streaming.returning_allocators; below it, the scratch stays on the heap)
_SCRATCH_BYTES = 2**17


class Moments:
    """Count, mean and sum of squared deviations of columns, combined part by part.

    ``add(X)`` merges a block of rows (Chan, Golub and LeVeque's pairwise update):
    delta = mean_b - mean_a, mean = mean_a + delta n_b / n, M2 = M2_a + M2_b + delta^2 n_a
    n_b / n. ``std`` is sqrt(M2 / n), the population deviation ``StandardScaler`` uses.
    """

    def __init__(self, width: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(width), np.zeros(width)

    def add(self, X: Array, names: list[str]) -> None:
        if not len(X):
            return
        mean_b, std_b = column_statistics(X, names)  # float64 whatever X's dtype
        n_a, n_b = self.n, len(X)
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + np.square(std_b) * n_b + np.square(delta) * (n_a * n_b / n)
        self.n = n

    @property
    def std(self) -> Array:
        return np.sqrt(self.m2 / max(self.n, 1))


def table_stream(
    path: str,
    target: str | None = None,
    *,
    task: str | None = None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    part_bytes: int = PART_BYTES,
    sep: str | None = None,
    outputs: int | None = None,
    dtype: str = "float32",
    impute: str | None = None,
    indicator: bool = False,
    comm: Any = None,
    reading: dict[str, Any] | None = None,
    parts: list[Part] | None = None,
    fit_on: Sequence[int] | None = None,
) -> TableStream:
    """The training rows of a data file as a ``Stream`` (``fit(net, stream)``).

    ``target``: the target column (default: the last); ``task``: "classification" or
    "regression" (default: inferred from every part's labels, as ``infer_task`` does);
    ``impute``, ``indicator``: gaps filled as ``Preprocessing.fit`` fills them; ``outputs``:
    N_Q (default: one per class, 1 for regression); ``part_bytes``: the size of a part
    (Parquet row groups are merged up to it). The stream's ``preprocessing`` is the fitted
    ``Preprocessing`` (for the model file and ``predict``). Raises a one-line ``DataError``.
    ``comm``: the ranks of an MPI communicator (every rank calls this together): the first
    pass reads each part on one rank only (``files.parts.owned_parts``), the statistics are
    agreed by reduction and the row counts gathered, so every rank gets the same stream.
    ``reading``: ``from_frame``'s table options (categorical, drop, na_values, decimal,
    thousands); ``parts``: the file's plan (``plan_parts``; default: planned here);
    ``fit_on``: the indices of the parts the preprocessing is fitted on (the training
    parts, so that held-out parts stay unseen; default: every part).
    """
    from .agreement import Agreement
    from .parts import owned_parts

    if parts is None:
        parts = plan_parts(path, sep=sep, part_bytes=part_bytes)
    agreement = Agreement(comm)
    mine = owned_parts(parts, agreement.rank, agreement.size)
    reader = _Reader(path, target, sep, dtype, impute is not None, reading or {})
    fitted = set(range(len(parts)) if fit_on is None else fit_on)
    counted: dict[int, int] = {}

    def datasets() -> Iterator[Dataset]:  # read again by a median's rounds
        for part in mine:
            if part.index not in fitted:  # held out: only its rows counted, once
                if part.index not in counted:
                    counted[part.index] = len(reader.first(part).X)
                continue
            data = reader.first(part)
            counted[part.index] = len(data.X)
            yield data

    prep = Preprocessing.fit_parts(datasets, task, agreement, target=target, impute=impute,
                                   indicator=indicator)  # fmt: skip
    for counts in agreement.gather(counted):
        counted.update(counts)
    rows = [counted[part.index] for part in parts]
    stream = TableStream(parts, reader, prep, rows, shuffle_buffer, dtype)
    if outputs is not None:
        stream.outputs = outputs
    return stream


class TableStream(Stream):
    """A data file's parts as a ``Stream``: ``read(part)`` encodes a part's rows with the
    fitted ``preprocessing``, its targets for ``outputs`` columns (N_Q: one per class, or
    1; set it to the network's N_Q, e.g. 1 for two classes and a sigmoid output);
    ``dataset(part)`` is the part as read (its raw target, for metrics in its own units)."""

    def __init__(
        self,
        parts: list[Part],
        reader: _Reader,
        prep: Preprocessing,
        rows: list[int],
        shuffle_buffer: int,
        dtype: str,
    ) -> None:
        super().__init__(parts, self._encoded, rows=rows, shuffle_buffer=shuffle_buffer,
                         preprocessing=prep)  # fmt: skip
        self.reader, self.dtype = reader, dtype
        self.outputs = prep.n_classes or 1

    def dataset(self, part: Part) -> Dataset:
        return self.reader.checked(self.reader.frame(part), self.preprocessing)

    def subset(self, chosen: list[int]) -> TableStream:
        """The same file's parts ``chosen`` (indices into ``parts``) as a stream of their own."""
        parts, rows = [self.parts[k] for k in chosen], [self.rows[k] for k in chosen]
        prep = self.preprocessing
        stream = TableStream(parts, self.reader, prep, rows, self.shuffle_buffer, self.dtype)
        stream.outputs = self.outputs
        return stream

    def _encoded(self, part: Part) -> tuple[Array, Array]:
        """The part's rows encoded. The first pass checked every cell (``from_frame``), so
        a part whose columns are still plain finite numbers with every target present is
        taken as it is (a third of an epoch's time went to checking again); anything else
        goes through ``from_frame`` again, with its one-line errors."""
        prep = self.preprocessing
        frame = self.reader.frame(part)
        raw, target = (None, None) if self.reader.na_values else _plain(frame, prep, self.dtype)
        # (a sentinel among numbers, --na-values -999, is a gap only to from_frame)
        if raw is None:
            data = self.reader.checked(frame, prep)
            raw, target = prep.columns_of(data), data.target
        X = np.empty(raw.shape, dtype=self.dtype)
        _standardised(np.asarray(raw), prep, X)
        return X, prep.encode(target, self.outputs, dtype=self.dtype)


def _standardised(raw: Array, prep: Preprocessing, X: Array) -> None:
    """``X[...] = prep.transform(raw, X.dtype)``, the same numbers, block by block through
    one float64 scratch of ``_SCRATCH_BYTES``: (x - mean) / scale in float64, then cast;
    the columns after the last one moved (one-hot blocks: mean 0, scale 1) are cast as they
    are, as ``transform`` does."""
    mean, scale = np.asarray(prep.mean, dtype=np.float64), np.asarray(prep.scale, dtype=np.float64)
    moved = np.flatnonzero((mean != 0.0) | (scale != 1.0))
    k = int(moved[-1]) + 1 if len(moved) else 0
    X[:, k:] = raw[:, k:]
    if not k:
        return
    mean, scale = mean[:k], scale[:k]
    step = max(1, _SCRATCH_BYTES // (8 * k))
    scratch = np.empty((min(step, len(raw)), k), dtype=np.float64)
    for start in range(0, len(raw), step):
        block = raw[start : start + step, :k]
        z = scratch[: len(block)]
        np.subtract(block, mean, out=z)
        np.divide(z, scale, out=z)
        X[start : start + len(block), :k] = z


def _plain(frame: Any, prep: Preprocessing, dtype: str) -> tuple[Array | None, Any]:
    """The model's feature columns as numbers and the target column, or (None, None) when a
    column is not plain numbers, a number is not finite or a target is missing."""
    if prep.columns is not None:  # a table to encode (categories, gaps): from_frame
        return None, None
    try:
        raw = frame[prep.feature_names].to_numpy(dtype=dtype)
        target = frame[prep.target_name]
    except (KeyError, TypeError, ValueError):
        return None, None
    if not np.isfinite(raw).all() or bool(target.isna().any()):
        return None, None
    return raw, target.to_numpy()


# What to do about a gap that a stream refuses (its imputation is named, never the default)
STREAM_GAPS = (
    "fill them in, drop those rows, or impute them (betaprop train --stream: --impute median)"
)


class _Reader:
    """A part of the file as a DataFrame, and as a checked ``Dataset``."""

    def __init__(
        self,
        path: str,
        target: str | None,
        sep: str | None,
        dtype: str,
        gaps: bool,
        reading: dict[str, Any],
    ) -> None:
        self.path, self.target, self.sep, self.dtype, self.gaps = path, target, sep, dtype, gaps
        declared = reading.get("categorical", "auto")
        self.declared = [] if isinstance(declared, str) else list(declared)
        self.drop = list(reading.get("drop", ()))
        self.locale = {key: reading[key] for key in ("decimal", "thousands") if key in reading}
        self.na_values = list(reading.get("na_values", ()))

    def frame(self, part: Part) -> Any:
        """A part read as a DataFrame (a ``.npy`` part's last column named "target"); declared
        categories as written, numbers in the locale given."""
        frame, _ = read_part(self.path, part, sep=self.sep, text=self.declared, **self.locale)
        if part.kind == "parquet":  # pyarrow's pool (mimalloc) keeps freed pages otherwise:
            import pyarrow as pa  # part after part, they added up to 2-3 parts' worth

            pa.default_memory_pool().release_unused()
        if isinstance(frame, np.ndarray):
            import pandas as pd

            names = [f"x{j}" for j in range(frame.shape[1] - 1)] + ["target"]
            frame = pd.DataFrame(np.asarray(frame), columns=names)
        return frame

    def first(self, part: Part) -> Dataset:
        """A part as ``fit_parts`` takes it: every column, its kinds found on its own rows."""
        frame = self.frame(part)
        name = self.target if self.target is not None else str(frame.columns[-1])
        features = [str(c) for c in frame.columns if str(c) not in (name, *self.drop)]
        return from_frame(frame, name, source=self.path, features=features,
                          categorical=self.declared or "auto", allow_missing=self.gaps,
                          dtype=self.dtype, na_values=self.na_values, gaps=STREAM_GAPS,
                          **self.locale)  # fmt: skip

    def checked(self, frame: Any, prep: Preprocessing) -> Dataset:
        """A part's DataFrame read as the model's table (its columns and categories)."""
        return from_frame(
            frame,
            prep.target_name,
            source=self.path,
            features=prep.columns if prep.columns is not None else prep.feature_names,
            categorical=list(prep.categories),
            allow_missing=prep.impute is not None,
            dtype=self.dtype,
            na_values=self.na_values,
            gaps=STREAM_GAPS,
            **self.locale,
        )
