"""The benchmark's workloads, its targets, and their data (NumPy only, no betaprop import).

``compare`` loads these in child processes that import betaprop from another source tree,
so nothing here may depend on betaprop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Array = np.ndarray


@dataclass(frozen=True)
class Workload:
    """A training workload: data, layer sizes, hidden activation and batch size (float32)."""

    name: str
    sizes: tuple[int, ...]
    activation: str
    batch_size: int
    n: int  # number of examples (digits: all 1,797)
    data: str = "synthetic"  # "synthetic" or "digits"


WORKLOADS: dict[str, Workload] = {
    "wide": Workload("wide", (784, 256, 128, 10), "relu", 128, 60_000),
    "small": Workload("small", (64, 64, 10), "relu", 32, 1_797, data="digits"),
    "deep": Workload("deep", (128,) + (128,) * 64 + (10,), "tanh", 256, 8_192),
}
# --quick: fewer examples for the synthetic workloads (same layers, batch and per-batch work).
QUICK_N = {"wide": 10_000, "small": 1_797, "deep": 2_048}
CONTENDERS = ("betaprop", "sklearn", "torch", "bound", "bound_rows")
# The targets: betaprop's epoch time divided by the bound's, PyTorch's, scikit-learn's.
TARGETS: dict[str, dict[str, float]] = {
    "wide": {"bound": 1.15, "torch": 0.6, "sklearn": 0.45},
    "small": {"bound": 2.5, "torch": 0.15, "sklearn": 0.2},
    "deep": {"bound": 1.2, "torch": 0.55, "sklearn": 0.75},
}
# A workload's run is steady when every contender's slowest epoch is within this factor of
# its fastest: on a shared machine, a change of load mid-run shows as a wider spread.
STEADY = 1.3
LEARNING_RATE = 0.01
MOMENTUM = 0.9
# The memory modes' workload: Q = 256 layers of 128 tanh, batch 256.
MEMORY_SIZES = (128,) + (128,) * 255 + (10,)
MEMORY_N, MEMORY_QUICK_N, MEMORY_BATCH = 4_096, 256, 256
MEMORY_ACTIVATION = "tanh"


def load(workload: Workload, n: int | None = None) -> tuple[Array, Array]:
    """The workload's inputs X (n, N_0) as float32 and integer class labels (n,).

    Synthetic data are standard normal inputs labelled by the arg-max of a fixed random
    linear map (a learnable problem); digits are scikit-learn's 8x8 images scaled to [0, 1].
    """
    if workload.data == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        return (digits.data / 16.0).astype(np.float32), digits.target.astype(np.int64)
    rng = np.random.default_rng(0)
    n = workload.n if n is None else n
    X = rng.standard_normal((n, workload.sizes[0]), dtype=np.float32)
    projection = rng.standard_normal((workload.sizes[0], workload.sizes[-1]), dtype=np.float32)
    return X, np.argmax(X @ projection, axis=1).astype(np.int64)


def load_memory(n: int) -> tuple[Array, Array]:
    """The memory modes' data: X (n, 128) standard normal, one-hot targets D (n, 10), float32."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, MEMORY_SIZES[0]), dtype=np.float32)
    return X, one_hot(rng.integers(0, MEMORY_SIZES[-1], n), MEMORY_SIZES[-1])


def one_hot(labels: Array, classes: int) -> Array:
    """Targets D (n, classes), float32: D[i, labels[i]] = 1."""
    D = np.zeros((len(labels), classes), dtype=np.float32)
    D[np.arange(len(labels)), labels] = 1.0
    return D


def short(sizes: Sequence[int]) -> str:
    """Layer sizes for a heading: all of them, or "N_0 -> k x N_1 -> N_Q" for deep nets."""
    if len(sizes) <= 6:
        return " -> ".join(map(str, sizes))
    return f"{sizes[0]} -> {len(sizes) - 2} x {sizes[1]} -> {sizes[-1]}"
