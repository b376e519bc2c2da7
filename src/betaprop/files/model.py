"""Model files: safetensors weights with JSON metadata and a SHA-256; never pickle.

A betaprop model file is a plain safetensors file (the container is ``files.container``).
Its tensors are named as the state dict of the matching ``torch.nn.Sequential``: for every
layer q = 1..Q a Linear layer, then, for a hidden layer, a BatchNorm1d where it is
normalised, its activation, and a Dropout where it has one. Without normalisation and
dropout the Linear layer of W^q sits at index 2(q - 1)::

    "{2(q-1)}.weight"  <- W^q, shape (N_q, N_{q-1})   (torch.nn.Linear.weight layout)
    "{2(q-1)}.bias"    <- b^q, shape (N_q,)           (the engine's (N_q, 1), flattened)

e.g. "0.weight", "0.bias", "2.weight", "2.bias" for a network with one hidden layer, so
``torch.nn.Sequential(Linear(N_0, N_1), ReLU(), Linear(N_1, N_2)).load_state_dict(
safetensors.torch.load_file(path))`` works as is. A normalised layer q adds, at the index
i + 1 after its Linear layer's i, ``"{i+1}.weight"`` (gamma^q), ``"{i+1}.bias"`` (shift^q),
``"{i+1}.running_mean"`` and ``"{i+1}.running_var"`` (the running statistics), all (N_q,):
the state dict of ``torch.nn.BatchNorm1d(N_q)``. A Dropout module has no tensors; it only
moves the indices after it by one.

The JSON document (key ``"betaprop"``) holds the network's description, ``net.spec()``
(sizes, activations, loss, dtype, seed, normalization, dropout, init), under ``"network"``,
and the caller's ``metadata``. ``load`` checks everything and raises ``ModelFileError`` for
any file that is damaged, truncated, foreign, of another format version, or altered after
saving. Saving is atomic, so a crash mid-save leaves the old file intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.layers import NORMALIZATIONS
from ..engine.network import Network
from .container import Contents, Format, atomic_write, document, read, require_finite, write

__all__ = [
    "save",
    "load",
    "read_model",
    "ModelFile",
    "ModelFileError",
    "MODEL",
    "tensor_names",
    "norm_tensor_names",
    "sequential_index",
    "layer_tensors",
    "read_network",
    "atomic_write",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "betaprop-model"
FORMAT_VERSION = 1
_TENSOR_NAMES = "W^q -> '{2(q-1)}.weight' (N_q, N_{q-1}); b^q -> '{2(q-1)}.bias' (N_q,)"
_TENSOR_NAMES_MODULES = (
    "torch.nn.Sequential(Linear, [BatchNorm1d], act, [Dropout], ..., Linear) state dict: "
    "W^q, b^q -> '{i}.weight', '{i}.bias'; gamma^q, shift^q, running mean and variance -> "
    "'{i+1}.weight', '{i+1}.bias', '{i+1}.running_mean', '{i+1}.running_var'"
)


class ModelFileError(ValueError):
    """A file that is not a valid, intact betaprop model file; the message says why."""


MODEL = Format(
    name=FORMAT,
    key="betaprop",
    version=FORMAT_VERSION,
    noun="model file",
    error=ModelFileError,
    loader="betaprop.load",
)


@dataclass
class ModelFile:
    """What ``read_model`` found: the network, the caller's metadata, the whole header."""

    network: Network
    metadata: dict[str, Any]
    header: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""


def sequential_index(q: int, normalized: Sequence[bool] = (), p: Sequence[float] = ()) -> int:
    """Index of the Linear layer of W^q in ``Sequential(Linear, [BatchNorm1d], act, [Dropout],
    ..., Linear)``; ``normalized`` and ``p`` are per layer 0..Q as ``net.normalized``, ``net.p``
    (empty: no normalisation, no dropout, so the index is 2(q - 1))."""
    index = 0
    for r in range(1, q):  # hidden layer r: Linear, [BatchNorm1d], activation, [Dropout]
        on = r < len(normalized) and normalized[r]
        dropped = r < len(p) and p[r] > 0
        index += 2 + int(on) + int(dropped)
    return index


def tensor_names(
    q: int, normalized: Sequence[bool] = (), p: Sequence[float] = ()
) -> tuple[str, str]:
    """The state-dict names of W^q and b^q: the Linear layer at ``sequential_index(q, ...)``,
    2(q-1) for a network without normalisation and dropout."""
    index = sequential_index(q, normalized, p)
    return f"{index}.weight", f"{index}.bias"


def norm_tensor_names(
    q: int, normalized: Sequence[bool], p: Sequence[float]
) -> tuple[str, str, str, str]:
    """The state-dict names of gamma^q, shift^q, running mean and running variance of a
    normalised layer q: its BatchNorm1d right after its Linear layer."""
    i = sequential_index(q, normalized, p) + 1
    return f"{i}.weight", f"{i}.bias", f"{i}.running_mean", f"{i}.running_var"


def named_tensors(net: Network) -> list[tuple[str, np.ndarray, str]]:
    """(state-dict name, array, role) of every tensor of every layer operation, in order.

    Walks ``net.ops[q]``: each operation that is a module of the torch ``nn.Sequential``
    (``torch_slot``) takes the next index, and names its own tensors ``"{index}.{suffix}"``
    (``Operation.tensors``): W^q and b^q, gamma^q, shift^q, running statistics.
    """
    named, index = [], 0
    for q in range(1, net.Q + 1):
        for op in net.ops[q]:
            named += [(f"{index}.{suffix}", a, role) for suffix, a, role in op.tensors(net, q)]
            index += op.torch_slot
    return named


def layer_tensors(net: Network) -> dict[str, np.ndarray]:
    """Every layer's tensors under their state-dict names, (N_q, 1) columns flattened to (N_q,)."""
    return {name: array for name, array, _ in named_tensors(net)}


# ------------------------------------------------------------------------------ saving
def save(
    net: Network, path: str | os.PathLike[str], metadata: Mapping[str, Any] | None = None
) -> None:
    """Save ``net`` to a safetensors model file, atomically.

    Parameters
    ----------
    net : the network; its parameters must be finite.
    path : the file to write (replaced atomically if it exists).
    metadata : JSON-serialisable mapping stored with the model (preprocessing, training
        settings, ...) and returned by ``read_model``. Floats round-trip exactly.
    """
    if not isinstance(net, Network):
        raise TypeError(f"net must be a betaprop.Network, got {type(net).__name__}")
    require_finite(net.params, "net.params")
    require_finite(net.stats, "net.stats")
    fields = document(
        MODEL,
        network=net.spec(),
        tensor_names=_TENSOR_NAMES_MODULES if _modular(net) else _TENSOR_NAMES,
        metadata=dict(metadata) if metadata is not None else {},
    )
    try:
        text = json.dumps(fields, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"metadata must be JSON-serialisable with finite numbers, got an error: {error}"
        ) from None
    write(path, MODEL, text, layer_tensors(net))


# ------------------------------------------------------------------------------ loading
def load(path: str | os.PathLike[str]) -> Network:
    """Load a network saved by ``save``; raises ``ModelFileError`` for any bad file."""
    return read_model(path).network


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read and verify a model file: the network, the caller's metadata and the header.

    Checks, in order: the safetensors structure, the betaprop metadata and its format
    version, the SHA-256 over metadata and weights (``container.read``), the network
    description, the tensor names, shapes and dtypes, and that every weight is finite.
    """
    contents = read(path, MODEL)
    net = read_network(contents)
    contents.refuse_unused()
    return ModelFile(net, contents.metadata(), contents.document, contents.sha256)


def read_network(contents: Contents) -> Network:
    """The network described by ``contents.document["network"]``, with its layer tensors.

    The description is checked first, then every W^q's shape against the sizes (before
    anything is allocated: a hand-edited size may be huge); then ``Network.from_spec``
    builds the network (it checks the names against the registries) and every tensor's
    dtype and finiteness is checked as it is copied in.
    """
    spec = _checked_spec(contents.document.get("network"), contents)
    sizes = spec["sizes"]
    normalized, p = _modules(spec, len(sizes) - 1)
    for q in range(1, len(sizes)):
        contents.tensor(tensor_names(q, normalized, p)[0], (sizes[q], sizes[q - 1]), role=f"W^{q}")
    try:
        net = Network.from_spec(spec)
    except (TypeError, ValueError, KeyError) as error:
        raise contents.fail(f"the network description is invalid: {error}") from None
    for name, target, role in named_tensors(net):  # (N_q, 1) columns stored as (N_q,)
        target[...] = contents.tensor(name, target.shape, net.dtype, role=role)
    return net


def _modular(net: Network) -> bool:
    """Whether some layer has more torch modules than its Linear layer and activation."""
    return any(sum(op.torch_slot for op in ops) > 2 for ops in net.ops)


def _modules(spec: dict[str, Any], Q: int) -> tuple[list[bool], list[float]]:
    """Per layer 0..Q, whether it is normalised and its dropout rate, as ``spec()`` writes
    them (one entry per hidden layer, or one for all): they fix the tensors' names. Values
    that are not understood count as none here; ``Network.from_spec`` refuses them after."""
    hidden: list[Any] = []
    for key, default in (("normalization", None), ("dropout", 0.0)):
        value = spec.get(key, default)
        hidden.append(
            value if isinstance(value, list) and len(value) == Q - 1 else [value] * (Q - 1)
        )
    normalized = [False] + [isinstance(m, str) and m in NORMALIZATIONS for m in hidden[0]] + [False]
    p = (
        [0.0]
        + [
            float(r) if isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 else 0.0
            for r in hidden[1]
        ]
        + [0.0]
    )
    return normalized, p


def _checked_spec(spec: Any, contents: Contents) -> dict[str, Any]:
    """The fields of a file's ``net.spec()`` that ``Network.from_spec`` cannot check itself.

    The sizes (they fix the tensors' shapes before anything is allocated), that there is
    one activation per layer, and the seed; names, loss and dtype are the constructor's.
    """
    if not isinstance(spec, dict):
        raise contents.fail("the metadata lacks the network description")
    missing = [key for key in ("sizes", "activations", "loss", "dtype") if key not in spec]
    if missing:
        raise contents.fail(f"the network description lacks {missing}")
    sizes, activations, seed = spec["sizes"], spec["activations"], spec.get("seed")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(N, int) and not isinstance(N, bool) and N >= 1 for N in sizes)
    ):
        raise contents.fail(f"network sizes must be a list of integers >= 1, got {sizes!r}")
    if not isinstance(activations, list) or len(activations) != len(sizes) - 1:
        raise contents.fail(
            f"network activations must be a list of {len(sizes) - 1} names, got {activations!r}"
        )
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise contents.fail(f"network seed must be an integer >= 0 or null, got {seed!r}")
    return spec
