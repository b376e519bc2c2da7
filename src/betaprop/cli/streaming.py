"""``betaprop train --stream``: a data file larger than memory, trained on part by part.

``--stream`` (or, for a data file, a memory pre-check that says the table does not fit:
one line on stderr says so) trains from ``Stream.from_file``: the file's parts (Parquet
row groups, CSV byte ranges, ``.npy`` row ranges) in a shuffled order each epoch, through a
shuffle buffer of ``--shuffle-buffer`` rows, the preprocessing fitted in a first pass
(docs/streaming.md). What differs from training in memory:

- the validation and test splits are whole parts (drawn with ``--seed``, about
  ``--val-fraction`` and ``--test-fraction`` of the rows, none when the file has fewer than
  three parts), and their metrics are computed part by part after training;
- there is no validation during training, so no early stopping (``--early-stopping`` is
  ignored) and the run ends with its last epoch's weights;
- of the table options, ``--sep``, ``--impute`` (no imputation unless asked: a gap is
  refused) and ``--indicator`` are taken; text columns are one-hot encoded as in memory;
- a checkpoint (``--checkpoint-every``, and always on Ctrl-C) keeps the position inside an
  epoch; ``--resume`` replays that epoch's reads up to it and goes on (``cli.train`` passes
  the checkpoint as ``saved``).

Under ``mpiexec`` each rank streams its own parts (``fit(..., comm=)``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

import numpy as np

from ..engine.losses import LOSSES
from ..files.agreement import Agreement
from ..files.datasets import BUNDLED, SYNTHETIC
from ..files.parts import PART_BYTES, plan_parts
from ..files.table_stream import Moments, TableStream, table_stream
from ..training.stream import SHUFFLE_BUFFER
from .memory import available_bytes, network_bytes, require_memory
from .models import table_options
from .options import UserError, int_at_least, positive_float

__all__ = [
    "add_stream_options",
    "wants_stream",
    "train_stream",
    "held_out_parts",
    "returning_allocators",
    "MMAP_THRESHOLD",
    "require_stream_memory",
]


def add_stream_options(parser: Any) -> None:
    """train's --stream, --shuffle-buffer and --part-size."""
    parser.add_argument(
        "--stream",
        action="store_true",
        help="read the data file part by part each epoch, through a shuffle buffer (data "
        "larger than memory); chosen by itself when the table does not fit",
    )
    parser.add_argument(
        "--shuffle-buffer",
        type=int_at_least(1),
        default=SHUFFLE_BUFFER,
        metavar="ROWS",
        help=f"rows of the shuffle buffer with --stream (default {SHUFFLE_BUFFER}; at least "
        "a batch is used)",
    )
    parser.add_argument(
        "--part-size",
        type=positive_float,
        default=None,
        metavar="MIB",
        help=f"with --stream: MiB of the file a part holds (default a 16th of the file, from "
        f"1 to {PART_BYTES // 2**20}; Parquet row groups are merged up to it); memory holds "
        "a part and the buffer; validation and test rows are whole parts",
    )


def wants_stream(args: argparse.Namespace, available: int | None = None) -> bool:
    """--stream, or a data file whose table the memory pre-check (``cli.memory``'s estimate:
    parameters, a batch's work and the table in the network's dtype) says does not fit in
    the memory available (``available``: measured when None); then one line on stderr says
    that it streams. Under mpiexec the ranks agree (any rank short of memory: all stream)."""
    from ..training.distributed import is_lead, world
    from ..training.launch import node_size

    if getattr(args, "stream", False):
        return True
    if getattr(args, "resume", None) or args.data in BUNDLED + SYNTHETIC:
        return False
    if not os.path.isfile(args.data):
        return False
    room = available_bytes() if available is None else available
    comm = world()
    share = 1.0 if comm is None else node_size(comm) / comm.Get_size()  # sharded: this node's
    needed = None  # rows (when K ranks read only their own, cli/sharded.py)
    if room is not None and _most_bytes(args) * share > room:  # else it surely fits: no scan
        needed = _table_bytes(args)
        needed = None if needed is None else int(needed * share)
    short = room is not None and needed is not None and needed > room
    if comm is not None:
        short = bool(comm.allreduce(short, op=_max()))
    if short and not getattr(args, "quiet", False) and is_lead(comm):
        print(
            f"betaprop: {args.data} needs about {(needed or 0) / 2**20:.0f} MiB in memory, "
            f"more than the {(room or 0) / 2**20:.0f} MiB available: streaming it part by part "
            "(--stream)",
            file=sys.stderr,
        )
    return short


def _most_bytes(args: argparse.Namespace) -> float:
    """A bound of ``_table_bytes`` from a CSV file's size alone, so that a file that surely
    fits is not scanned for its rows: every cell takes at least two bytes (a character and a
    separator or line end), so the table holds at most size / 2 numbers (counted twice, and
    256 MiB for the network's work; the pre-check after reading refuses a network that does
    not fit). A Parquet or gzip file (compressed) has no such bound: infinity."""
    with open(args.data, "rb") as handle:
        magic = handle.read(4)
    if magic == b"PAR1" or magic[:2] == b"\x1f\x8b":
        return math.inf
    cells = os.path.getsize(args.data) / 2
    return 2 * cells * np.dtype(args.dtype).itemsize + 2**28


def _table_bytes(args: argparse.Namespace) -> int | None:
    """The pre-check's estimate for training on the whole table in memory (its rows from the
    file's parts, its columns from the first part); None for a file that cannot be split."""
    from ..files.parts import plan_parts, read_part

    parts = plan_parts(args.data)
    n = sum(part.rows or 0 for part in parts)
    if not n:
        return None  # a file that cannot be split (gzip): read as a whole
    frame, _ = read_part(args.data, parts[0])
    columns = frame.shape[1] if frame.ndim == 2 else 1
    sizes = [columns, *args.hidden, 1]
    needed, _ = network_bytes(sizes, np.dtype(args.dtype).itemsize, args.batch_size, n * columns)
    return needed


def returning_allocators() -> None:
    """Allocators that hand freed memory back, for this command's process: pyarrow's system
    pool instead of mimalloc (which keeps a part's freed pages), and glibc's mmap threshold
    fixed at ``MMAP_THRESHOLD`` = 256 KiB (by default it grows to the largest block freed,
    after which a part's arrays come from a heap that is not returned). A part's arrays are
    MiB-sized: they are mapped, and unmapped when the part is dropped; smaller blocks (a
    batch's temporaries, a column's read buffers of ~100 KiB, ``table_stream``'s 128 KiB
    scratch) stay on the heap, where the next part reuses them. At 64 KiB, as before, every
    read buffer was an mmap, its page faults and a munmap: 10 000 page faults a part
    against 4 000, a part read in about twice the time, and the streamed epochs at 0.4 x
    the in-memory samples/s (0.6 x with the default allocators). Measured on a 600 000 x 40
    Parquet file (benchmarks/streaming.py): the data's share of the peak 0.25 x the matrix
    (0.39 x with the default allocators). Process-wide settings, so the command sets them,
    never the library (docs/streaming.md says how to set them there)."""
    import ctypes
    import ctypes.util

    try:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except ImportError:  # no Parquet reader: nothing of pyarrow's to return
        pass
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except OSError:  # not glibc: its own allocator's rules
        pass


# glibc's fixed mmap threshold under returning_allocators (the environment's
# MALLOC_MMAP_THRESHOLD_): blocks of at least this many bytes are mapped, unmapped when freed
MMAP_THRESHOLD = 2**18
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def _max() -> Any:
    from ..training.launch import mpi

    return mpi().MAX


# copies of a part's rows held while it is read and encoded: the reader's table, the raw
# columns, the encoded rows (the float64 scratch is a block of rows, not a part)
PART_COPIES = 3


def require_stream_memory(args: argparse.Namespace, stream: TableStream) -> None:
    """The memory pre-check of a streamed run (``cli.memory``): the network and a batch as
    in memory, and for data the shuffle buffer (S / K rows a rank) and ``PART_COPIES`` of
    the largest part, instead of the table; refused in one line when it does not fit."""
    from ..training.distributed import world

    prep = stream.preprocessing
    width = len(prep.feature_names) + max(prep.n_classes, 1)
    comm = world()
    ranks = 1 if comm is None else comm.Get_size()
    rows = -(-args.shuffle_buffer // ranks) + PART_COPIES * max(stream.rows)
    sizes = [len(prep.feature_names), *args.hidden, max(prep.n_classes, 1)]
    needed, n_params = network_bytes(
        sizes, np.dtype(args.dtype).itemsize, args.batch_size, rows * width
    )
    require_memory(
        f"--shuffle-buffer {args.shuffle_buffer}",
        needed,
        f"{n_params:,} parameters in {args.dtype}, batches of {args.batch_size}, a buffer of "
        f"{args.shuffle_buffer:,} rows and parts of up to {max(stream.rows):,} rows",
    )


def _part_bytes(args: argparse.Namespace) -> int:
    """--part-size in bytes; by default a 16th of the file (at least 1 MiB, at most
    ``PART_BYTES``): enough parts to hold validation and test parts out of a file that
    fits in a few parts, never more than a part of ``PART_BYTES`` in memory."""
    if args.part_size is not None:
        return max(1, int(args.part_size * 2**20))
    return int(min(PART_BYTES, max(os.path.getsize(args.data) // 16, 2**20)))


def held_out_parts(rows: list[int], val: float, test: float, seed: int) -> dict[str, list[int]]:
    """The parts of each split: test, then validation parts drawn in a seeded order until
    each holds about its fraction of the rows (never every part; none with fewer than three
    parts); the rest train."""
    if val + test >= 1.0:
        raise UserError(
            f"--val-fraction + --test-fraction must be < 1, got {val!r} + {test!r} = {val + test!r}"
        )
    order = [int(k) for k in np.random.default_rng(seed).permutation(len(rows))]
    n = sum(rows)
    splits: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    if len(rows) >= 3:
        for name, fraction in (("test", test), ("validation", val)):
            taken = 0
            while fraction and order and taken < fraction * n and len(order) > 1:
                k = order.pop()
                splits[name].append(k)
                taken += rows[k]
    splits["train"] = sorted(order)
    return {name: sorted(parts) for name, parts in splits.items()}


def train_stream(
    args: argparse.Namespace, console: Any, out: str, saved: Any = None, allocators: bool = True
) -> Any:
    """Train as ``betaprop train`` does, from the data file's parts, and write the run folder
    ``out`` (made and owned by the caller); returns the ``TrainRun``. ``saved``: the
    checkpoint of ``--resume`` (``cli.train``), whose run goes on where it stopped.
    ``allocators``: set ``returning_allocators`` for the process (the command's own; a
    caller inside a longer-lived process, such as a test session, passes False)."""
    from ..files.frames import Dataset
    from ..training.distributed import is_lead, world
    from .runs import TrainRun, finite, portable_argv, write_run
    from .settings import build_network
    from .training import training_record

    if getattr(args, "class_weight", None):
        raise UserError("--class-weight needs the class counts of the whole table: not with "
                        "--stream (train in memory, or balance the file)")  # fmt: skip
    if allocators:
        returning_allocators()
    task = None if args.task == "auto" else args.task
    part_bytes = _part_bytes(args)
    impute = None if getattr(args, "impute", None) in (None, "none") else args.impute
    reading = table_options(args)  # --categorical, --drop, --na-values, --decimal, ...
    sep = reading.pop("sep", None)
    reading.pop("allow_missing", None)  # (a stream fills gaps only with --impute)
    plan = plan_parts(args.data, sep=sep, part_bytes=part_bytes, agreement=Agreement(world()))
    chosen = held_out_parts([part.rows or 0 for part in plan], args.val_fraction,
                            args.test_fraction, args.seed)  # fmt: skip
    stream = table_stream(
        args.data,
        args.target,
        task=task,
        shuffle_buffer=args.shuffle_buffer,
        part_bytes=part_bytes,
        dtype=args.dtype,
        sep=sep,
        impute=impute,
        indicator=bool(getattr(args, "indicator", False)),
        comm=world(),  # under mpiexec: each part read by one rank, statistics agreed
        reading=reading,
        parts=plan,
        fit_on=chosen["train"],  # the held-out parts stay unseen, as in memory
    )
    prep = stream.preprocessing
    if args.loss and LOSSES[args.loss].targets == "counts":  # the log link needs them as they are
        prep.target_mean, prep.target_scale = 0.0, 1.0
    require_stream_memory(args, stream)
    net = build_network(args, len(prep.feature_names), prep)
    stream.outputs = net.sizes[-1]
    splits = {name: stream.subset(parts) for name, parts in chosen.items() if parts}
    comm = world()
    held_out = args.val_fraction + args.test_fraction > 0
    if held_out and len(splits) == 1 and is_lead(comm) and not getattr(args, "quiet", False):
        print(f"betaprop: note: {args.data} streams as {len(stream.rows)} part(s), too few to "
              "hold whole parts out: no validation or test scores (a smaller --part-size, or "
              "more Parquet row groups, makes more parts)", file=sys.stderr)  # fmt: skip
    started = time.perf_counter()
    history, optimizer, run_id = _fit(args, net, splits["train"], out, saved, comm)
    seconds = time.perf_counter() - started
    scores = {name: stream_metrics(net, part) for name, part in splits.items()}
    data = Dataset(np.empty((0, len(prep.feature_names))), np.empty(0), list(prep.feature_names),
                   prep.target_name, args.data)  # fmt: skip
    rows = {name: range(part.n_rows) for name, part in splits.items()}
    run = TrainRun(net, prep, history, data, rows, scores, {}, out, seconds)  # type: ignore[arg-type]
    run.metadata["preprocessing"] = prep.to_dict()
    batch_size = min(args.batch_size, splits["train"].n_rows)
    run.metadata["training"] = training_record(args, run, optimizer, batch_size)
    run.metadata["training"].update(stream=True, shuffle_buffer=args.shuffle_buffer, run_id=run_id,
                                    argv=portable_argv(getattr(args, "argv", None)))  # fmt: skip
    run.metadata["metrics"] = finite(scores)
    if is_lead(comm):
        write_run(out, net, run.metadata, history, prep=prep)
    return run


def _fit(
    args: argparse.Namespace, net: Any, train: TableStream, out: str, saved: Any, comm: Any
) -> tuple[Any, Any, str]:
    """fit on the training parts with the run's checkpoint (every --checkpoint-every epochs,
    and on Ctrl-C, in the middle of an epoch too); from ``saved`` when resuming. Returns the
    history, the optimizer and the run's id."""
    import secrets

    from ..files.checkpoint import Checkpoint
    from ..training.distributed import is_lead
    from .runs import portable_argv
    from .settings import optimizer_and_schedule
    from .training import fit_network

    optimizer, schedule = optimizer_and_schedule(args)
    settings: dict[str, Any] = {"optimizer": optimizer, "epochs": args.epochs, "seed": args.seed,
                                "schedule": schedule, "batch_size": args.batch_size}  # fmt: skip
    run_id = secrets.token_hex(8)
    if saved is not None:
        settings, run_id = _resumed(saved, net, train), saved.metadata.get("run_id", run_id)
        settings["batch_size"] = saved.state.batch_size
    if comm is not None:
        settings["comm"] = comm
    every = getattr(args, "checkpoint_every", None)
    metadata = {"argv": portable_argv(getattr(args, "argv", None)), "run_id": run_id,
                "stream_rows": train.rows}  # fmt: skip
    checkpoint = Checkpoint(out, every=every, metadata=metadata,
                            final=every is not None or saved is not None)  # fmt: skip
    callbacks = [checkpoint] if is_lead(comm) else []
    history = fit_network(net, train, None, settings, callbacks, None)  # type: ignore[arg-type]
    return history, settings["optimizer"], run_id


def _resumed(saved: Any, net: Any, train: TableStream) -> dict[str, Any]:
    """fit's arguments that continue the saved streamed run; its parts and network checked."""
    if saved.metadata.get("stream_rows") != train.rows:
        raise UserError(
            f"--resume: the training parts differ from those of {saved.path} (their row "
            "counts differ): resume with the same data file and --part-size"
        )
    if {**saved.network.spec(), "seed": net.seed} != net.spec():
        raise UserError(f"--resume: the network in {saved.path} does not match its settings")
    net.params[...] = saved.network.params
    net.stats[...] = saved.network.stats
    net.dropout_rng = saved.network.dropout_rng
    state = saved.state
    return {"optimizer": state.optimizer, "epochs": saved.remaining_epochs,
            "schedule": state.schedule, "history": saved.history, "state": state}  # fmt: skip


def stream_metrics(net: Any, stream: TableStream) -> dict[str, float]:
    """Loss and scores of ``net`` on a stream's parts, one part at a time: accuracy and macro
    F1 (from per-class counts), or R², MAE and RMSE in the target's units (R² from the
    residuals' sum of squares and the target's moments, combined part by part)."""
    prep, total, n = stream.preprocessing, 0.0, 0
    classes = len(prep.classes) if prep.classes else 0
    hits, truths, guesses = np.zeros(classes), np.zeros(classes), np.zeros(classes)
    residuals, absolute, moments = 0.0, 0.0, Moments(1)
    for part in stream.parts:
        data = stream.dataset(part)
        X, D = stream.read(part)
        P = net.predict(X)
        total += _loss(net, X, D) * len(X)
        n += len(X)
        if classes:
            position = {label: k for k, label in enumerate(prep.classes or [])}
            truth = np.array([position[label] for label in prep.labels(data.target)])
            guess = np.array([position[label] for label in prep.decode(P)])
            np.add.at(hits, truth[truth == guess], 1)
            np.add.at(truths, truth, 1)
            np.add.at(guesses, guess, 1)
        else:
            values = np.asarray(prep.decode(P), dtype=np.float64)
            target = np.asarray(data.target, dtype=np.float64)
            residuals += float(np.sum(np.square(target - values)))
            absolute += float(np.sum(np.abs(target - values)))
            moments.add(target[:, None], [prep.target_name])
    result = {"loss": total / n}
    if classes:
        result["accuracy"] = float(hits.sum() / n)
        seen = (truths + guesses) > 0  # scikit-learn's macro F1 over the labels present
        result["f1_macro"] = float(np.mean(2 * hits[seen] / (truths[seen] + guesses[seen])))
    else:
        spread = moments.m2[0]
        result["r2"] = 1.0 - residuals / spread if n > 1 and spread > 0 else math.nan
        result["mae"], result["rmse"] = absolute / n, math.sqrt(residuals / n)
    return result


def _loss(net: Any, X: Any, D: Any) -> float:
    from ..training.loop import evaluate

    return float(evaluate(net, X, D)[0])
