"""The data fingerprint of a sharded ``betaprop train`` (kept in its checkpoint, compared by
``--resume``): the same whichever rank holds which row, so a run resumes under any K."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..files.datasets import Dataset, numeric_labels
from ..files.preprocessing import Preprocessing
from .sharded import Shard

__all__ = ["data_digest", "row_digest"]

Array = np.ndarray


def data_digest(prep: Preprocessing, data: Dataset, shard: Shard) -> str:
    """The fingerprint of a sharded run's training data (``row_digest``) from the table as
    read (before ``encoded_splits``: standardised values would carry the rounding of means
    reduced in an order that depends on K) and the targets as numbers (the class's index, or
    the value)."""
    rows = shard.local["train"]
    if prep.task == "classification":
        index = {label: j for j, label in enumerate(prep.classes or ())}
        values = [float(index[label]) for label in prep.labels(data.target[rows])]
        targets = np.array(values, dtype=np.float64).reshape(-1, 1)
    else:
        numbers = numeric_labels(data.target[rows])
        targets = np.zeros((len(rows), 1)) if numbers is None else numbers.reshape(-1, 1)
    return row_digest(data.X, rows, targets, shard.numbers["train"], shard.comm)


def row_digest(X: Array, rows: Array, targets: Array, numbers: Array, comm: Any) -> str:
    """A fingerprint of all ranks' training rows, whichever rank holds which (so a run resumes
    under any number of ranks): the sum mod 2^64 of a hash of each row's bytes (``X[rows]``
    and ``targets``, row by row) and global number, summed over the ranks. (One process keeps
    the SHA-256 of its X and D.)"""
    rng = np.random.default_rng(20251206)
    total, step = 0, 8192
    for A, index in ((X, rows), (targets, None)):
        words = A.shape[1] * A.dtype.itemsize // 4
        weights = rng.integers(1, 2**63, size=words + 1, dtype=np.uint64) | np.uint64(1)
        for start in range(0, len(rows), step):
            part = A[index[start : start + step]] if index is not None else A[start : start + step]
            block = np.ascontiguousarray(part).view(np.uint32)
            with np.errstate(over="ignore"):
                h = block.astype(np.uint64) @ weights[:words]
                h += numbers[start : start + step].astype(np.uint64) * weights[words]
                h ^= h >> np.uint64(29)
                h *= np.uint64(0xBF58476D1CE4E5B9)  # a 64-bit mixer (splitmix64's)
            total = (total + int(h.sum(dtype=np.uint64))) % 2**64
    return f"rows:{sum(comm.allgather(total)) % 2**64:016x}"
