"""Model files: safetensors weights with JSON metadata and a SHA-256; never pickle.

A betaprop model file is a plain safetensors file. Its tensors are named as the state dict
of the matching ``torch.nn.Sequential`` -- a Linear layer, then its activation, for every
layer q = 1..Q -- so the Linear layer of W^q sits at index 2(q - 1)::

    "{2(q-1)}.weight"  <- W^q, shape (N_q, N_{q-1})   (torch.nn.Linear.weight layout)
    "{2(q-1)}.bias"    <- b^q, shape (N_q,)           (the engine's (N_q, 1), flattened)

e.g. "0.weight", "0.bias", "2.weight", "2.bias" for a network with one hidden layer, so
``torch.nn.Sequential(Linear(N_0, N_1), ReLU(), Linear(N_1, N_2)).load_state_dict(
safetensors.torch.load_file(path))`` works as is.

The safetensors header's ``__metadata__`` holds two strings: ``"betaprop"``, a JSON document
(format name and version, betaprop version, the network's sizes, activations, loss, dtype,
and the caller's ``metadata``), and ``"sha256"``, a digest over that JSON text and every
tensor's name, dtype, shape and bytes. ``load`` checks all of it and raises
``ModelFileError`` for any file that is damaged, truncated, foreign (a pickle, random
bytes, another program's safetensors), of another format version, or altered after saving.
The digest detects damage and careless edits; it is not a signature against someone who
recomputes it.

Saving is atomic: the bytes go to a temporary file in the same folder, which is flushed,
fsync'ed and renamed over the target (``os.replace``), so a crash mid-save leaves the old
file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.activations import ACTIVATIONS
from ..engine.losses import LOSSES
from ..engine.network import Network

__all__ = [
    "save",
    "load",
    "read_model",
    "ModelFile",
    "ModelFileError",
    "tensor_names",
    "atomic_write",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "betaprop-model"
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
_DTYPES = {"float32": "F32", "float64": "F64"}


class ModelFileError(ValueError):
    """A file that is not a valid, intact betaprop model file; the message says why."""


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


def _digest(document: str, tensors: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the metadata text and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(FORMAT.encode() + b"\0")
    h.update(document.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        tensor = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{tensor.dtype.str}|{list(tensor.shape)}\0".encode())
        h.update(tensor.tobytes())
    return h.hexdigest()


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    Readers see either the old file or the whole new one, never a part; on any error the
    temporary file is removed and the old file is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); not possible everywhere
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


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
    from safetensors.numpy import save as serialize

    if not isinstance(net, Network):
        raise TypeError(f"net must be a betaprop.Network, got {type(net).__name__}")
    if not np.isfinite(net.params).all():
        bad = int(np.argwhere(~np.isfinite(net.params))[0, 0])
        raise ValueError(
            f"net.params must be finite to be saved, got {net.params[bad]!r} at index {bad}"
        )
    from .. import __version__

    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "betaprop_version": __version__,
        "network": describe_network(net),
        "tensor_names": "W^q -> '{2(q-1)}.weight' (N_q, N_{q-1}); b^q -> '{2(q-1)}.bias' (N_q,)",
        "metadata": dict(metadata) if metadata is not None else {},
    }
    try:
        text = json.dumps(document, allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"metadata must be JSON-serialisable with finite numbers, got an error: {error}"
        ) from None
    tensors: dict[str, np.ndarray] = {}
    for q in range(1, net.Q + 1):
        weight, bias = tensor_names(q)
        tensors[weight] = np.ascontiguousarray(net.W[q])
        tensors[bias] = np.ascontiguousarray(net.b[q][:, 0])
    data = serialize(tensors, metadata={"betaprop": text, "sha256": _digest(text, tensors)})
    atomic_write(path, data)


def load(path: str | os.PathLike[str]) -> Network:
    """Load a network saved by ``save``; raises ``ModelFileError`` for any bad file."""
    return read_model(path).network


def _header(data: bytes, where: str) -> dict[str, Any]:
    """The safetensors JSON header, with only structural checks."""
    if len(data) < 8:
        raise ModelFileError(f"{where}: not a betaprop model file (only {len(data)} bytes)")
    (length,) = struct.unpack("<Q", data[:8])
    if length < 2 or length > _MAX_HEADER or 8 + length > len(data):
        detail = (
            "it looks like a Python pickle, which betaprop never loads"
            if data[:1] == b"\x80" or data[:2] == b"PK"
            else "the header length does not fit the file: truncated, or not safetensors"
        )
        raise ModelFileError(f"{where}: not a betaprop model file ({detail})")
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...
        raise ModelFileError(
            f"{where}: not a betaprop model file (its header is not valid JSON)"
        ) from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: not a betaprop model file (its header is not an object)")
    return header


def describe_network(net: Network) -> dict[str, Any]:
    """The JSON description of a network's architecture that ``_network`` rebuilds it from."""
    return {
        "sizes": list(net.sizes),
        "activations": list(net.activations),
        "loss": net.loss.name,
        "dtype": net.dtype,
        "seed": net.seed if isinstance(net.seed, int) else None,
    }


def read_file(path: str | os.PathLike[str], noun: str, error: type[ModelFileError]) -> bytes:
    """The bytes of a file, or ``error`` naming it as ``noun`` ("model file", "checkpoint")."""
    where = os.fspath(path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise error(f"{noun} {where!r} does not exist") from None
    except IsADirectoryError:
        raise error(f"{noun} {where!r} is a folder, not a file") from None
    except OSError as problem:
        raise error(f"{noun} {where!r} cannot be read: {problem.strerror}") from None


def read_verified(
    data: bytes,
    where: str,
    *,
    key: str,
    fmt: str,
    version: int,
    noun: str,
    error: type[ModelFileError] = ModelFileError,
) -> tuple[dict[str, Any], dict[str, np.ndarray], str]:
    """Verify a betaprop safetensors file; returns (JSON document, tensors, SHA-256).

    Checks, in order: the safetensors structure, that ``__metadata__[key]`` is a JSON
    document of format ``fmt`` and version ``version``, and the SHA-256 over that text and
    every tensor. Every failure is ``error`` with a message naming ``noun``.
    """
    from safetensors.numpy import load as deserialize

    try:
        header = _header(data, where)
    except ModelFileError as problem:
        raise error(str(problem).replace("model file", noun)) from None
    try:
        tensors = deserialize(data)
    except Exception as problem:  # the Rust parser raises its own error types
        first = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise error(f"{where}: damaged or truncated safetensors data ({first})") from None
    info = header.get("__metadata__")
    if not isinstance(info, dict) or not isinstance(info.get(key), str):
        if isinstance(info, dict) and noun != "model file" and "betaprop" in info:
            raise error(
                f"{where}: a betaprop model file, not a {noun} (load it with betaprop.load)"
            )
        raise error(f"{where}: a safetensors file, but not a betaprop {noun} (no {key} metadata)")
    text = info[key]
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise error(f"{where}: the {key} metadata is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != fmt:
        raise error(f"{where}: not a betaprop {noun} (format is not {fmt!r})")
    found = document.get("format_version")
    if found != version:
        raise error(
            f"{where}: {noun} format version {found!r} is not supported; this betaprop "
            f"{_version()} reads version {version}"
        )
    digest = _digest(text, tensors)
    if info.get("sha256") != digest:
        raise error(f"{where}: SHA-256 mismatch: the {noun} was changed or damaged after saving")
    return document, tensors, digest


def read_model(path: str | os.PathLike[str]) -> ModelFile:
    """Read and verify a model file: the network, the caller's metadata and the header.

    Checks, in order: the safetensors structure, the betaprop metadata and its format
    version, the SHA-256 over metadata and weights (``read_verified``), the network
    description against the registries, the tensor names, shapes and dtypes, and that
    every weight is finite.
    """
    where = os.fspath(path)
    data = read_file(path, "model file", ModelFileError)
    document, tensors, digest = read_verified(
        data, where, key="betaprop", fmt=FORMAT, version=FORMAT_VERSION, noun="model file"
    )
    net = _network(document.get("network"), tensors, where)
    metadata = document.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ModelFileError(f"{where}: the metadata field must be a JSON object")
    return ModelFile(net, metadata, document, digest)


def _version() -> str:
    from .. import __version__

    return __version__


def _network(spec: Any, tensors: Mapping[str, np.ndarray], where: str) -> Network:
    """Rebuild the network from its description and check every tensor against it."""
    if not isinstance(spec, dict):
        raise ModelFileError(f"{where}: the metadata lacks the network description")
    sizes, activations = spec.get("sizes"), spec.get("activations")
    loss, dtype = spec.get("loss"), spec.get("dtype")
    if (
        not isinstance(sizes, list)
        or len(sizes) < 2
        or not all(isinstance(N, int) and not isinstance(N, bool) and N >= 1 for N in sizes)
    ):
        raise ModelFileError(
            f"{where}: network sizes must be a list of integers >= 1, got {sizes!r}"
        )
    if not isinstance(activations, list) or len(activations) != len(sizes) - 1:
        raise ModelFileError(
            f"{where}: network activations must be a list of {len(sizes) - 1} names, "
            f"got {activations!r}"
        )
    unknown = [a for a in activations if not isinstance(a, str) or a not in ACTIVATIONS]
    if unknown:
        raise ModelFileError(
            f"{where}: activation must be one of {sorted(ACTIVATIONS)}, got {unknown[0]!r}"
        )
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ModelFileError(f"{where}: loss must be one of {sorted(LOSSES)}, got {loss!r}")
    if not isinstance(dtype, str) or dtype not in _DTYPES:
        raise ModelFileError(f"{where}: dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    for q in range(1, len(sizes)):  # before allocating: a hand-edited size may be huge
        name, wanted = tensor_names(q)[0], (sizes[q], sizes[q - 1])
        weight = tensors.get(name)
        if weight is not None and weight.shape != wanted:
            raise ModelFileError(
                f"{where}: tensor {name!r} must be {dtype} of shape {wanted}, got "
                f"{weight.dtype} of shape {weight.shape}"
            )
        if weight is None:
            raise ModelFileError(f"{where}: tensor {name!r} (layer {q}) is missing")
    seed = spec.get("seed")
    try:
        net = Network(sizes, activations[:-1], activations[-1], loss, dtype)
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{where}: the network description is invalid: {error}") from None
    net.seed = seed if isinstance(seed, int) else None
    expected = set()
    for q in range(1, net.Q + 1):
        for name, target, shape in zip(
            tensor_names(q),
            (net.W[q], net.b[q]),
            ((net.sizes[q], net.sizes[q - 1]), (net.sizes[q],)),
            strict=True,
        ):
            expected.add(name)
            tensor = tensors.get(name)
            if tensor is None:
                raise ModelFileError(f"{where}: tensor {name!r} (layer {q}) is missing")
            if tensor.shape != shape or tensor.dtype != np.dtype(dtype):
                raise ModelFileError(
                    f"{where}: tensor {name!r} must be {dtype} of shape {shape}, got "
                    f"{tensor.dtype} of shape {tensor.shape}"
                )
            if not np.isfinite(tensor).all():
                raise ModelFileError(f"{where}: tensor {name!r} holds non-finite values")
            target[...] = tensor.reshape(target.shape)
    extra = sorted(set(tensors) - expected)
    if extra:
        raise ModelFileError(f"{where}: unexpected tensors {extra} for sizes {sizes}")
    return net
