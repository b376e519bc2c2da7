"""``betaprop train`` under K ranks: each rank reads, encodes and trains on its own rows.

The file is cut into parts (``files.parts``: Parquet row groups, CSV byte ranges at record
starts), planned by the ranks together (each scans 1/K of a CSV file's bytes); rank r reads
only its contiguous block of parts (``owned_parts``). The rows keep their global numbers
0..n-1 (rank r's first is the sum of the rows before it, an ``Exscan``). Then, as one
process does on the whole table:

- the split: every rank gathers the class labels as codes (4 bytes a row; codes in the
  order of the sorted labels, so that ``split_rows`` stratifies exactly as on the labels)
  and draws the same ``split_rows`` as one process (Parquet: from the target column alone,
  before the matrix is read, then checked against the labels read with the rows);
- the preprocessing: means and standard deviations of the training rows from each rank's
  count, mean and sum of squared deviations, combined pairwise (Chan et al.), never from
  sum x and sum x^2; the classes: the union of the ranks' labels;
- each rank encodes only its rows; ``fit(..., rows=)`` trains on them (the global shuffle);
- the final metrics and the confusion matrix: sums over the ranks (``cli.sharded_metrics``).

A table that needs encoding (text categories, gaps to impute) is fitted with
``Preprocessing.fit_parts`` over the ranks (categories, fill values and exact medians agreed
by reduction, ``files.agreement``) and each rank encodes its rows with it; only a table whose
reading leaves rows out (a missing target) is read whole on every rank, as a bundled dataset.
Every rank checks that it read the same file: its size and modification time before the
plan and after its reads must be the same on every rank.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.losses import LOSSES
from ..files.agreement import Agreement
from ..files.datasets import Dataset, numeric_labels
from ..files.frames import from_frame
from ..files.parts import PART_BYTES, owned_parts, plan_parts, read_part
from ..files.preprocessing import Preprocessing
from ..files.reading import DataError
from .models import table_options
from .options import UserError
from .sharded_labels import same_labels, strata, task_and_labels

__all__ = [
    "Shard",
    "balanced_weights",
    "encoded_splits",
    "shardable",
    "sharded_data",
    "sharded_data_and_splits",
]

Array = np.ndarray


@dataclass
class Shard:
    """This rank's rows of the table: the global number of its first, all ranks' count,
    and per split the rows in its ``data`` (``local``) and their numbers within the split
    (``numbers``: what ``fit(..., rows=)`` takes for the training split)."""

    comm: Any
    first: int
    n: int
    local: dict[str, Array] = field(default_factory=dict)
    numbers: dict[str, Array] = field(default_factory=dict)
    raw: Any = None  # a table to encode: this rank's rows as read (pandas, with the target)
    table: bool = False  # some rank's rows need encoding (text categories, gaps)
    early: Any = None  # (task, classes, codes, n, splits) drawn from the target alone


def shardable(args: argparse.Namespace, comm: Any) -> bool:
    """Whether this run reads its data sharded: K > 1 ranks and a data file (not bundled)."""
    if comm is None or comm.Get_size() < 2:
        return False
    spec = args.data
    return os.path.isfile(spec)  # (a missing file: the one-process path says so)


def sharded_data(args: argparse.Namespace, comm: Any) -> tuple[Dataset, Shard] | None:
    """This rank's rows of --data as a ``Dataset``, and where they lie; None where a table
    to encode lost rows (a missing target: read whole). Collective: every rank calls it."""
    before = _identity(args.data)
    _release_freed_memory()  # what the memory pre-check's read of a part left
    # parts of about size / 8K bytes (at most PART_BYTES): each rank a block of about 8
    # parts, so that the blocks are balanced to about a part (Parquet: to a row group)
    size = -(-before[0] // (8 * comm.Get_size()))
    part_bytes = max(1, min(PART_BYTES, size))
    sep = table_options(args)["sep"]
    # every rank plans together: each scans 1/K of a CSV file's bytes (Parquet: the footer)
    parts = plan_parts(args.data, sep=sep, part_bytes=part_bytes, agreement=Agreement(comm))
    mine = owned_parts(parts, comm.Get_rank(), comm.Get_size())
    early = _early_split(args, comm, parts, mine)
    _release_freed_memory()  # what the split's temporaries left, before the matrix exists
    data, raw = _read(args, mine), None
    plain = data is None or data.frame is None
    table = not comm.allreduce(plain, op=_mpi().LAND)
    if table:  # text categories or gaps somewhere: every rank keeps its rows as read
        data, raw = _read_table(args, mine)
        if not comm.allreduce(raw is not False, op=_mpi().LAND):
            return None  # rows without a target left out: the global numbering is lost
    _same_file(comm, args.data, before, _identity(args.data))
    names = comm.allgather(None if data is None else (data.feature_names, data.target_name))
    known = [n for n in names if n is not None]
    if not table and any(n != known[0] for n in known):
        raise DataError(f"{args.data}: the parts of the file have different columns: {known}")
    if data is None:  # no rows here: an empty table of the same columns
        features, target_name = known[0]
        data = Dataset(np.empty((0, len(features)), dtype=args.dtype),
                       np.empty(0, dtype=object), features, target_name, args.data)  # fmt: skip
    m = len(data.X)
    first = int(comm.exscan(m) or 0)  # (None on rank 0)
    return data, Shard(comm, first, int(comm.allreduce(m)), raw=raw, table=table, early=early)


def _early_split(args: argparse.Namespace, comm: Any, parts: list, mine: list) -> Any:
    """(task, classes, codes, n, splits) from the target column alone (Parquet), drawn before
    the matrix is read: scikit-learn's stratified split holds about 75 bytes a row of all n
    rows for a moment (a list of NumPy integers), which then never stacks on the matrix.
    None (on every rank) for other files or where the column alone does not give the
    labels; the caller checks them against the labels read with the rows."""
    from .settings import split_rows

    target = _target_alone(args, parts, mine)
    if not comm.allreduce(target is not None, op=_mpi().LAND) or target is None:
        return None
    task, distinct, codes = task_and_labels(args, target, comm)
    del target
    n = sum(part.rows or 0 for part in parts)
    stratify = None if codes is None else strata(codes)
    try:
        splits = split_rows(n, stratify, args.val_fraction, args.test_fraction, args.seed)
    except UserError:  # (every rank alike) the split after the read says it
        return None
    return task, distinct, codes, n, splits


def _target_alone(args: argparse.Namespace, parts: list, mine: list) -> Array | None:
    """This rank's target cells as ``from_frame`` makes them (``target_cells``), read from
    the target column of its Parquet parts alone; None for any other file, a target that is
    not a column, or one with a gap (rows left out: the read decides)."""
    from ..files.kinds import MAX_MAGNITUDE, MISSING
    from ..files.numbers import target_cells
    from ..files.parts import parquet_columns

    if not parts or parts[0].kind != "parquet":
        return None
    names = parquet_columns(args.data)
    name = args.target if args.target is not None else names[-1]
    if name not in names or len(names) < 2:
        return None
    na_values = table_options(args)["na_values"]
    missing = tuple(MISSING) + tuple(str(v).strip().lower() for v in na_values)
    pieces = []
    for part in mine:
        cells = target_cells(read_part(args.data, part, columns=[name])[0][name],
                             MAX_MAGNITUDE, missing)  # fmt: skip
        if cells is None:
            return None
        pieces.append(cells)
    if not pieces:
        return np.empty(0, dtype=object)
    return np.concatenate(pieces) if len(pieces) > 1 else pieces[0]


def _read(args: argparse.Namespace, parts: list) -> Dataset | None:
    """The rows of this rank's parts, as ``load_data`` reads a table (None: no parts), part
    by part into one matrix (sized from the plan's row counts: never two copies at once)."""
    options = table_options(args)
    declared = [] if isinstance(options["categorical"], str) else options["categorical"]
    capacity = sum(part.rows or 0 for part in parts)
    first: Dataset | None = None
    X, targets, filled = None, [], 0
    for part in parts:
        frame, _ = read_part(
            args.data, part, sep=options["sep"], text=declared,
            decimal=options["decimal"], thousands=options["thousands"],
        )  # fmt: skip
        piece = from_frame(frame, args.target, source=args.data, dtype=args.dtype, **options)
        del frame
        if piece.frame is not None:  # a table to encode: read whole (the caller's fallback)
            return piece
        if X is None or filled + len(piece.X) > len(X):  # (a part of unknown rows: grow)
            grown = np.empty((max(capacity, filled + len(piece.X)), piece.X.shape[1]),
                             dtype=piece.X.dtype)  # fmt: skip
            if X is not None:
                grown[:filled] = X[:filled]
            X = grown
        X[filled : filled + len(piece.X)] = piece.X
        filled += len(piece.X)
        targets.append(piece.target)
        first = first or piece
        piece.X = X[:0]  # let the part's own matrix go
        _release_freed_memory()  # before the next part: the peak stays one part's
    if first is None or X is None:
        return None
    target = np.concatenate(targets) if len(targets) > 1 else targets[0]
    return Dataset(X[:filled], target, first.feature_names, first.target_name, first.source,
                   first.task, None, first.categorical, first.notes)  # fmt: skip


def _read_table(args: argparse.Namespace, parts: list) -> tuple[Dataset | None, Any]:
    """A table to encode: this rank's parts as read (one frame, with the target) and as one
    ``Dataset`` (its feature table kept for ``encode_table``); (None, None) without parts,
    (None, False) when reading left rows out (a missing target)."""
    import pandas as pd

    options = table_options(args)
    declared = [] if isinstance(options["categorical"], str) else options["categorical"]
    frames = [
        read_part(args.data, part, sep=options["sep"], text=declared,
                  decimal=options["decimal"], thousands=options["thousands"])[0]
        for part in parts
    ]  # fmt: skip
    if not frames:
        return None, None
    raw = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    raw.index = range(len(raw))
    data = from_frame(raw, args.target, source=args.data, dtype=args.dtype, **options)
    return (data, raw) if len(data.target) == len(raw) else (None, False)


def _release_freed_memory() -> None:
    """Give back what reading freed but the allocators keep: Arrow's memory pool, and the C
    heap's free pages (glibc's ``malloc_trim``; elsewhere nothing)."""
    import ctypes
    import sys

    with contextlib.suppress(ImportError):
        import pyarrow

        pyarrow.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


def encoded_splits(prep: Preprocessing, data: Dataset, shard: Shard) -> dict[str, Array]:
    """This rank's inputs of each split, standardised, with no second copy of its table:
    ``data.X`` is standardised in place in blocks of rows ((x - mean) / scale in float64, as
    ``transform`` computes it, stored in the table's dtype), the validation and test rows are
    copied out, and the training rows are moved to the front of ``data.X`` (a view of them is
    the training input). ``data.X`` is no longer row by row the table afterwards."""
    X, step = data.X, 8192
    for start in range(0, len(X), step):
        block = X[start : start + step]
        block[...] = prep.transform(block, X.dtype.name)
    inputs = {name: X[rows] for name, rows in shard.local.items() if name != "train"}
    train = shard.local["train"]
    for start in range(0, len(train), step):  # train[i] >= i: a source is never overwritten
        block = train[start : start + step]  # before it is moved
        X[start : start + len(block)] = X[block]
    inputs["train"] = X[: len(train)]
    return inputs


def _identity(path: str) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_size, status.st_mtime_ns


def _same_file(comm: Any, path: str, before: tuple, after: tuple) -> None:
    """Refuse (DataError, every rank) a file whose size or time differs between reads."""
    seen = comm.allgather((before, after))
    if len({stamp for pair in seen for stamp in pair}) > 1:
        sizes = sorted({stamp[0] for pair in seen for stamp in pair})
        raise DataError(
            f"{path} changed while the ranks read it (sizes {sizes} bytes, or its "
            "modification time, differ between ranks' reads): train on a file nothing writes"
        )


def _mpi() -> Any:
    from ..training.launch import mpi

    return mpi()


def place(shard: Shard, splits: dict[str, Array], m: int) -> None:
    """This rank's rows of each split (sorted global rows): where they are in its data and
    their numbers within the split."""
    for name, rows in splits.items():
        a, b = np.searchsorted(rows, [shard.first, shard.first + m])
        shard.local[name] = rows[a:b] - shard.first
        shard.numbers[name] = np.arange(a, b)


# ----------------------------------------------------------------------------- statistics
def table_preprocessing(
    args: argparse.Namespace, data: Dataset, task: str, shard: Shard
) -> tuple[Dataset, Preprocessing]:
    """A table to encode: ``Preprocessing.fit_parts`` on all ranks' training rows (agreed by
    reduction: categories, fill values, exact medians, moments), then this rank's rows
    encoded (``encode_table``) as one process encodes them."""
    from ..files.agreement import Agreement

    options = table_options(args)
    impute = getattr(args, "impute", None)
    impute = None if impute == "none" else (impute or "median")  # a table: median
    parts = [] if shard.raw is None else [shard.raw.iloc[shard.local["train"]]]
    reading = {key: options[key] for key in ("drop", "na_values", "decimal", "thousands")}
    prep = Preprocessing.fit_parts(
        parts, task, Agreement(shard.comm), target=data.target_name, impute=impute,
        indicator=getattr(args, "indicator", False), categorical=options["categorical"],
        reading=dict(reading, source=args.data, sep=options["sep"], dtype=args.dtype),
    )  # fmt: skip
    shard.raw = None  # the table's cells: no longer needed
    if len(data.target):
        encoded = prep.encode_table(data)
    else:
        encoded = np.empty((0, len(prep.feature_names)), dtype=args.dtype)
    return Dataset(encoded, data.target, list(prep.feature_names), data.target_name,
                   data.source, data.task), prep  # fmt: skip


def sharded_preprocessing(
    data: Dataset, task: str, shard: Shard, distinct: list[str] | None
) -> Preprocessing:
    """``Preprocessing.fit`` on the training rows of all ranks (a table of numbers): means
    and scales reduced over the ranks, the classes of every rank's labels."""
    from .sharded_metrics import reduced_statistics  # (it imports cli.training, which imports this)

    comm, rows = shard.comm, shard.local["train"]
    mean, scale = reduced_statistics(data.X, rows, comm)
    scale[scale == 0.0] = 1.0
    prep = Preprocessing(list(data.feature_names), [float(v) for v in mean],
                         [float(v) for v in scale], task, data.target_name)  # fmt: skip
    if task == "classification":
        assert distinct is not None
        labels = Dataset(np.zeros((len(distinct), 1)), np.array(distinct, dtype=object), ["x"],
                         data.target_name, data.source)  # fmt: skip
        prep.classes = Preprocessing.fit(labels, "classification").classes
    else:
        numbers = numeric_labels(data.target)
        if numbers is None:
            raise DataError(f"target {data.target_name!r} must be numeric for regression")
        t_mean, t_scale = reduced_statistics(numbers[:, None], rows, comm)
        prep.target_mean = float(t_mean[0])
        prep.target_scale = float(t_scale[0]) if t_scale[0] > 0 else 1.0
    return prep


def sharded_data_and_splits(
    args: argparse.Namespace, comm: Any
) -> tuple[Dataset, Preprocessing, dict[str, Array], Any, Shard] | None:
    """``data_and_splits`` where each rank reads only its rows: this rank's ``Dataset``, the
    preprocessing of all ranks' training rows, the global splits (those of one process),
    the notes, and the ``Shard``; None when the table needs encoding (read it whole)."""
    from .models import print_notes
    from .settings import split_rows
    from .training import task_note

    read = sharded_data(args, comm)
    if read is None:
        return None
    data, shard = read
    task, distinct, codes = task_and_labels(args, data.target, comm)
    early, shard.early = shard.early, None
    if early is not None and same_labels(early, (task, distinct, codes, shard.n)):
        splits = early[4]  # drawn before the matrix was read, from the same labels
    else:
        stratify = None if codes is None else strata(codes)
        splits = split_rows(shard.n, stratify, args.val_fraction, args.test_fraction, args.seed)
        del stratify
    del codes, early
    place(shard, splits, len(data.X))
    _release_freed_memory()  # what the split's temporaries left in the C heap
    if shard.table:
        data, prep = table_preprocessing(args, data, task, shard)
    else:
        prep = sharded_preprocessing(data, task, shard, distinct)
    if args.loss and LOSSES[args.loss].targets == "counts":  # the log link needs them as they are
        prep.target_mean, prep.target_scale = 0.0, 1.0
        mine = numeric_labels(data.target) if task == "regression" else None
        lowest = comm.allreduce(float(mine.min()) if mine is not None and len(mine) else 0.0,
                                op=_mpi().MIN)  # fmt: skip
        if lowest < 0:
            raise UserError(f"--loss {args.loss} needs a target >= 0 (counts), got {lowest!r}")
    _same_preprocessing(prep, comm)

    def say_notes() -> None:  # --quiet prints nothing
        if not getattr(args, "quiet", False):
            print_notes(data)
            if args.task == "auto" and data.task is None:
                task_note(data, task)

    return data, prep, splits, say_notes, shard


def _same_preprocessing(prep: Preprocessing, comm: Any) -> None:
    """The agreement that replaces a checksum of the data: every rank encodes with the same
    preprocessing (its JSON fields, bit for bit), or every rank stops with one line."""
    import hashlib
    import json

    text = json.dumps(prep.to_dict(), sort_keys=True, default=str)
    digests = comm.allgather(hashlib.sha256(text.encode()).hexdigest())
    if len(set(digests)) > 1:
        raise DataError(
            f"the ranks learned different preprocessing from the data (digests {digests}): "
            "the file must be read alike by every rank"
        )


def balanced_weights(prep: Preprocessing, data: Dataset, shard: Shard) -> Array:
    """--class-weight balanced over all ranks' training rows: n / (k n_c) for each of this
    rank's training rows (n_c: the class's training rows on all ranks, k: the classes that
    have any)."""
    rows = shard.local["train"]
    index = {label: j for j, label in enumerate(prep.classes or ())}
    codes = np.fromiter((index[label] for label in prep.labels(data.target[rows])),
                        dtype=np.intp, count=len(rows))  # fmt: skip
    counts = np.bincount(codes, minlength=len(index)).astype(np.int64)
    shard.comm.Allreduce(_mpi().IN_PLACE, counts)
    n, k = int(counts.sum()), int((counts > 0).sum())
    return n / (k * counts[codes])
