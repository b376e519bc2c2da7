"""Model files: safetensors weights with JSON metadata and a SHA-256; never pickle.

A betaprop model file is a plain safetensors file (the container is ``files.container``).
Its tensors are named as the state dict of the matching ``torch.nn.Sequential`` -- a Linear
layer, then its activation, for every layer q = 1..Q -- so the Linear layer of W^q sits at
index 2(q - 1)::

    "{2(q-1)}.weight"  <- W^q, shape (N_q, N_{q-1})   (torch.nn.Linear.weight layout)
    "{2(q-1)}.bias"    <- b^q, shape (N_q,)           (the engine's (N_q, 1), flattened)

e.g. "0.weight", "0.bias", "2.weight", "2.bias" for a network with one hidden layer, so
``torch.nn.Sequential(Linear(N_0, N_1), ReLU(), Linear(N_1, N_2)).load_state_dict(
safetensors.torch.load_file(path))`` works as is.

The JSON document (key ``"betaprop"``) holds the network's description, ``net.spec()``
(sizes, activations, loss, dtype, seed), under ``"network"`` and the caller's
``metadata``. ``load`` checks everything and raises ``ModelFileError`` for any file that is
damaged, truncated, foreign, of another format version, or altered after saving. Saving is
atomic, so a crash mid-save leaves the old file intact.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

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
    "layer_tensors",
    "read_network",
    "atomic_write",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "betaprop-model"
FORMAT_VERSION = 1
_TENSOR_NAMES = "W^q -> '{2(q-1)}.weight' (N_q, N_{q-1}); b^q -> '{2(q-1)}.bias' (N_q,)"


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


def tensor_names(q: int) -> tuple[str, str]:
    """The state-dict names of W^q and b^q: the Linear layer at Sequential index 2(q-1)."""
    return f"{2 * (q - 1)}.weight", f"{2 * (q - 1)}.bias"


def layer_tensors(net: Network) -> dict[str, np.ndarray]:
    """W^q and b^q of every layer under their state-dict names, biases flattened to (N_q,)."""
    tensors: dict[str, np.ndarray] = {}
    for q in range(1, net.Q + 1):
        weight, bias = tensor_names(q)
        tensors[weight] = net.W[q]
        tensors[bias] = net.b[q][:, 0]
    return tensors


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
    fields = document(
        MODEL,
        network=net.spec(),
        tensor_names=_TENSOR_NAMES,
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
    for q in range(1, len(sizes)):
        contents.tensor(tensor_names(q)[0], (sizes[q], sizes[q - 1]), role=f"W^{q}")
    try:
        net = Network.from_spec(spec)
    except (TypeError, ValueError, KeyError) as error:
        raise contents.fail(f"the network description is invalid: {error}") from None
    for q in range(1, net.Q + 1):
        targets, roles = (net.W[q], net.b[q][:, 0]), (f"W^{q}", f"b^{q}")
        for name, target, role in zip(tensor_names(q), targets, roles, strict=True):
            target[...] = contents.tensor(name, target.shape, net.dtype, role=role)
    return net


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
