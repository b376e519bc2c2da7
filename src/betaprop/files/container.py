"""The file container of model files and checkpoints: safetensors + a JSON document + SHA-256.

A betaprop file is a plain safetensors file. Its header's ``__metadata__`` holds two
strings: under the format's key, a JSON document (format name and version, betaprop
version, then the format's own fields), and under ``"sha256"``, a digest over that JSON
text and every tensor's name, dtype, shape and bytes. ``read`` checks all of it and raises
the format's error for any file that is damaged, truncated, foreign (a pickle, random
bytes, another program's safetensors), of another format version, or altered after saving.
The digest detects damage and careless edits; it is not a signature against someone who
recomputes it.

Reads are bounded: the declared header length is checked against the file and against
safetensors' own limit before any JSON is parsed, and the tensors' declared shapes against
their bytes (by the safetensors parser), so a hostile header cannot make betaprop allocate.
Writes are atomic (``atomic_write``): a crash mid-save leaves the old file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Format", "Contents", "atomic_write", "digest", "document", "read", "write"]

Array = np.ndarray

MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
# Every digest starts with this tag. It was the model format's name when checkpoints came
# along; kept for all formats so that existing files still verify.
_DIGEST_TAG = b"betaprop-model\0"


@dataclass(frozen=True)
class Format:
    """A kind of betaprop file: how its JSON document is stored, and how errors name it."""

    name: str  # the document's "format" field
    key: str  # the __metadata__ entry that holds the document
    version: int  # the one format version this betaprop reads and writes
    noun: str  # how messages name such a file: "model file", "checkpoint"
    error: type[ValueError]  # what every problem with such a file raises
    loader: str  # the function that reads it, for messages

    def fail(self, where: str, message: str) -> ValueError:
        """The format's error, naming the file."""
        return self.error(f"{where}: {message}")


def digest(text: str, tensors: Mapping[str, Array]) -> str:
    """SHA-256 over the JSON text and every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(_DIGEST_TAG)
    h.update(text.encode("utf-8") + b"\0")
    for name in sorted(tensors):
        tensor = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{tensor.dtype.str}|{list(tensor.shape)}\0".encode())
        h.update(tensor.tobytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------ writing
def document(fmt: Format, **fields: Any) -> dict[str, Any]:
    """A new JSON document of format ``fmt``: format name and version, betaprop version, fields."""
    from .. import __version__

    return {
        "format": fmt.name,
        "format_version": fmt.version,
        "betaprop_version": __version__,
        **fields,
    }


def require_finite(array: Array, name: str) -> None:
    """Refuse to save non-finite numbers: ``name`` must be finite to be saved, got ..."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        flat = array.reshape(-1)
        bad = int(np.argwhere(~np.isfinite(flat))[0, 0])
        raise ValueError(f"{name} must be finite to be saved, got {flat[bad]!r} at index {bad}")


def write(
    path: str | os.PathLike[str], fmt: Format, text: str, tensors: Mapping[str, Array]
) -> None:
    """Write ``tensors`` with the JSON ``text`` under ``fmt.key`` and its digest, atomically."""
    from safetensors.numpy import save as serialize

    contiguous = {name: np.ascontiguousarray(t) for name, t in tensors.items()}
    for name, tensor in contiguous.items():
        require_finite(tensor, f"{fmt.noun} tensor {name!r}")
    metadata = {fmt.key: text, "sha256": digest(text, contiguous)}
    atomic_write(path, serialize(contiguous, metadata=metadata))


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary file in the same folder, fsync, rename.

    The temporary file's name is unique (random), so two writers never share it. Readers
    see either the old file or the whole new one, never a part; on any error the
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


# ------------------------------------------------------------------------------ reading
@dataclass
class Contents:
    """A verified file: its JSON document and tensors, and how to complain about them.

    ``tensor`` checks one tensor and records it as used; ``refuse_unused`` then refuses a
    file that holds tensors nobody asked for.
    """

    fmt: Format
    where: str
    document: dict[str, Any]
    tensors: dict[str, Array]
    sha256: str
    used: set[str] = field(default_factory=set)

    def fail(self, message: str) -> ValueError:
        """The format's error, naming the file."""
        return self.fmt.fail(self.where, message)

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...],
        dtype: str | None = None,
        *,
        role: str = "",
        required: bool = True,
    ) -> Array | None:
        """The tensor ``name`` if it has ``shape``, ``dtype`` and finite values, else an error.

        ``dtype=None`` checks the shape only (before the dtype is known). ``role`` names
        the tensor in a message (``"b^2"``). A missing tensor is an error when ``required``,
        else None.
        """
        label = f"tensor {name!r}" + (f" ({role})" if role else "")
        tensor = self.tensors.get(name)
        if tensor is None:
            if required:
                raise self.fail(f"{label} is missing")
            return None
        self.used.add(name)
        if dtype is None:
            if tensor.shape != shape:
                raise self.fail(f"{label} must be of shape {shape}, got shape {tensor.shape}")
            return tensor
        if tensor.shape != shape or tensor.dtype != np.dtype(dtype):
            raise self.fail(
                f"{label} must be {dtype} of shape {shape}, got {tensor.dtype} of shape "
                f"{tensor.shape}"
            )
        if not np.isfinite(tensor).all():
            raise self.fail(f"{label} holds non-finite values")
        return tensor

    def refuse_unused(self) -> None:
        """Refuse tensors that no ``tensor`` call asked for."""
        extra = sorted(set(self.tensors) - self.used)
        if extra:
            raise self.fail(f"unexpected tensors {extra}")

    def metadata(self) -> dict[str, Any]:
        """The caller's metadata stored with the file (a JSON object)."""
        metadata = self.document.get("metadata", {})
        if not isinstance(metadata, dict):
            raise self.fail("the metadata field must be a JSON object")
        return metadata


def read(path: str | os.PathLike[str], fmt: Format, others: Sequence[Format] = ()) -> Contents:
    """Read and verify a file of format ``fmt``; a file of one of ``others`` is named as such.

    Checks, in order: that the file can be read, the safetensors structure, that
    ``__metadata__[fmt.key]`` is a JSON document of format ``fmt.name`` and version
    ``fmt.version``, and the SHA-256 over that text and every tensor. Every failure is
    ``fmt.error`` with a message naming the file.
    """
    from safetensors.numpy import load as deserialize

    where = os.fspath(path)
    data = _read_bytes(where, fmt)
    info = _header(data, where, fmt).get("__metadata__")
    try:
        tensors = deserialize(data)
    except Exception as problem:  # the Rust parser raises its own error types
        first = str(problem).splitlines()[0] if str(problem) else type(problem).__name__
        raise fmt.fail(where, f"damaged or truncated safetensors data ({first})") from None
    if not isinstance(info, dict) or not isinstance(info.get(fmt.key), str):
        for other in others:
            if isinstance(info, dict) and other.key in info:
                raise fmt.fail(
                    where,
                    f"a betaprop {other.noun}, not a {fmt.noun} (load it with {other.loader})",
                )
        raise fmt.fail(
            where, f"a safetensors file, but not a betaprop {fmt.noun} (no {fmt.key} metadata)"
        )
    text = info[fmt.key]
    found = _document(text, where, fmt)
    sha256 = digest(text, tensors)
    if info.get("sha256") != sha256:
        raise fmt.fail(
            where, f"SHA-256 mismatch: the {fmt.noun} was changed or damaged after saving"
        )
    return Contents(fmt, where, found, tensors, sha256)


def open_regular(
    path: str, error: type[Exception], noun: str, *, folder: str = "is a folder, not a file"
) -> tuple[Any, int]:
    """``path`` opened for binary reading, and its size, if it is a regular file.

    A FIFO, a device (``/dev/zero``), a socket or a folder is refused before anything is
    read: such a file could block forever or never end. The open itself never blocks
    (O_NONBLOCK, cleared once the file is known to be regular). Raises ``error``.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{noun} {path!r} does not exist") from None
    except IsADirectoryError:
        raise error(f"{noun} {path!r} {folder}") from None
    except OSError as problem:
        raise error(f"{noun} {path!r} cannot be read: {problem.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{noun} {path!r} {folder}")
        kind = (
            "a FIFO" if stat.S_ISFIFO(info.st_mode)
            else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket" if stat.S_ISSOCK(info.st_mode)
            else "not a regular file"
        )  # fmt: skip
        raise error(f"{noun} {path!r} is {kind}; betaprop reads only regular files")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb"), info.st_size


def _read_bytes(where: str, fmt: Format) -> bytes:
    """The bytes of a file, or ``fmt.error`` saying why not.

    Only a regular file is read, and only once its first 8 bytes declare a header length
    that fits the file: a huge file that is not safetensors is refused after 8 bytes.
    """
    handle, size = open_regular(where, fmt.error, fmt.noun)
    try:
        with handle:
            start = handle.read(8)
            if len(start) == 8:
                (length,) = struct.unpack("<Q", start)
                if length < 2 or length > MAX_HEADER or 8 + length > size:
                    return start  # _header words the refusal
            return start + handle.read(max(size - len(start), 0))
    except OSError as problem:
        raise fmt.error(f"{fmt.noun} {where!r} cannot be read: {problem.strerror}") from None


def _header(data: bytes, where: str, fmt: Format) -> dict[str, Any]:
    """The safetensors JSON header, after checking its declared length against the file."""
    if len(data) < 8:
        raise fmt.fail(where, f"not a betaprop {fmt.noun} (only {len(data)} bytes)")
    (length,) = struct.unpack("<Q", data[:8])
    if length < 2 or length > MAX_HEADER or 8 + length > len(data):
        detail = (
            "it looks like a Python pickle, which betaprop never loads"
            if data[:1] == b"\x80" or data[:2] == b"PK"
            else "the header length does not fit the file: truncated, or not safetensors"
        )
        raise fmt.fail(where, f"not a betaprop {fmt.noun} ({detail})")
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: [[[[...
        raise fmt.fail(where, f"not a betaprop {fmt.noun} (its header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise fmt.fail(where, f"not a betaprop {fmt.noun} (its header is not an object)")
    return header


def _document(text: str, where: str, fmt: Format) -> dict[str, Any]:
    """The JSON document, after checking its format name and version."""
    try:
        found = json.loads(text)
    except (ValueError, RecursionError):
        raise fmt.fail(where, f"the {fmt.key} metadata is not valid JSON") from None
    if not isinstance(found, dict) or found.get("format") != fmt.name:
        raise fmt.fail(where, f"not a betaprop {fmt.noun} (format is not {fmt.name!r})")
    version = found.get("format_version")
    if version != fmt.version:
        from .. import __version__

        raise fmt.fail(
            where,
            f"{fmt.noun} format version {version!r} is not supported; this betaprop "
            f"{__version__} reads version {fmt.version}",
        )
    return found
