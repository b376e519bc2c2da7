"""The networks of the conformance matrix (tests/test_conformance.py): every layer operation
and the combinations that matter, each as ``Network`` keyword arguments, in float64."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse

from betaprop.engine.network import Network
from betaprop.training.loop import fit
from betaprop.training.optimizers import SGD

SIZES = [6, 5, 5, 5, 3]  # N_1 = N_2 = N_3: layers 2 and 3 can be residual
CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "batch_norm": {"normalization": "batch"},
    "layer_norm": {"normalization": "layer"},
    "dropout": {"dropout": 0.3},
    "residual": {"residual": True},
    "batch_norm+dropout": {"normalization": "batch", "dropout": 0.3},
    "layer_norm+residual": {"normalization": "layer", "residual": True},
    "residual+batch_norm": {"normalization": "batch", "residual": True},
    "residual+dropout": {"residual": True, "dropout": 0.25},
    "mixed_per_layer": {
        "normalization": ["layer", "batch", None],
        "residual": [False, True, False],
    },
    "sparse_first_layer": {"normalization": "layer", "residual": True, "sparse": True},
    "recompute": {
        "normalization": "layer",
        "residual": True,
        "dropout": 0.2,
        "memory": "recompute",
        "sizes": [6, 5, 5, 5, 5, 5, 5, 3],
    },  # fmt: skip
}


def network(name: str, seed: int = 1) -> Network:
    """The case's network (tanh hidden layers, softmax and cross-entropy), float64."""
    settings = {k: v for k, v in CASES[name].items() if k not in ("sparse", "sizes")}
    sizes = CASES[name].get("sizes", SIZES)
    net = Network(sizes, "tanh", loss="cross_entropy", dtype="float64", seed=seed, **settings)
    rng = np.random.default_rng(seed + 10)  # gamma and shift away from 1 and 0
    for q in range(1, net.Q):
        if net.gamma[q] is not None:
            net.gamma[q][...] = rng.uniform(0.5, 1.5, size=net.gamma[q].shape)
            net.shift[q][...] = rng.normal(scale=0.3, size=net.shift[q].shape)
    return net


def data(name: str, n: int = 37, seed: int = 3) -> tuple[Any, np.ndarray]:
    """X (n, N_0), sparse CSR (about 40 % non-zero) for the sparse case, and one-hot D."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, CASES[name].get("sizes", SIZES)[0]))
    if CASES[name].get("sparse"):
        X[rng.random(X.shape) < 0.6] = 0.0
        X = scipy.sparse.csr_matrix(X)
    D = np.eye(3)[rng.integers(0, 3, n)]
    return X, D


def train(name: str, comm: Any = None) -> Network:
    """Three epochs of SGD with momentum, batch 8 (37 rows: a short last batch)."""
    net = network(name)
    X, D = data(name)
    fit(net, X, D, optimizer=SGD(0.05, momentum=0.9), epochs=3, batch_size=8, seed=7, comm=comm)
    return net
