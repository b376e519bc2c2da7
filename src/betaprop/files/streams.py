"""A data file's bytes within bounds: regular files only, gzip decompressed within
``MAX_DECOMPRESSED`` bytes, decoded as UTF-8 (``files.reading`` opens tables with these)."""

from __future__ import annotations

from typing import Any

from .errors import DataError

__all__ = [
    "MAX_DECOMPRESSED",
    "HEAD",
    "CHUNK",
    "open_data",
    "decoded",
    "whole_text",
    "whole_bytes",
    "uncompressed",
]

# Files are opened only when they are regular files (a FIFO would block, /dev/zero never ends)
# and are read within their size; a compressed file within MAX_DECOMPRESSED bytes.
MAX_DECOMPRESSED = 16 * 1024**3
HEAD = 65536
CHUNK = 64 * 1024**2  # a compressed file is decompressed this many bytes at a time


def open_data(path: str) -> tuple[Any, int]:
    """A regular file opened for reading and its size, or a one-line DataError."""
    from .container import open_regular

    return open_regular(path, DataError, "data file", folder="is a folder, not a CSV file")


def decoded(blob: bytes | bytearray, path: str, final: bool) -> str:
    try:
        return blob.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        if not final and error.start >= len(blob) - 3:  # a character cut by the head's end
            return blob[: error.start].decode("utf-8-sig")
        raise DataError(
            f"{path}: not a UTF-8 text file (byte {error.start} cannot be decoded); "
            "save it as UTF-8 CSV"
        ) from None


def whole_text(path: str) -> str:
    """The whole text of a (possibly gzip-compressed) file, bounded, for the strict reader."""
    handle, size = open_data(path)
    with handle:
        stream = uncompressed(handle, path)
        blob = whole_bytes(stream, size if stream is handle else None)
    if len(blob) > MAX_DECOMPRESSED:
        raise DataError(f"{path}: more than {MAX_DECOMPRESSED} bytes once decompressed")
    return decoded(blob, path, final=True)


def whole_bytes(stream: Any, size: int | None) -> bytes | bytearray:
    """The bytes of ``stream``, read within what they can be: a file's ``size`` (+1, to see
    one that grew), or, decompressed (``size`` None), in chunks of ``CHUNK`` up to one past
    ``MAX_DECOMPRESSED``. Never one buffer of the limit itself: CPython allocates the whole
    of ``read(n)`` up front, and 16 GiB fails on every laptop (tests/test_seams_reading.py)."""
    if size is not None:
        return stream.read(min(size, MAX_DECOMPRESSED) + 1)
    blob = bytearray()
    while len(blob) <= MAX_DECOMPRESSED:
        chunk = stream.read(min(CHUNK, MAX_DECOMPRESSED + 1 - len(blob)))
        if not chunk:
            break
        blob += chunk
    return blob


def uncompressed(handle: Any, path: str) -> Any:
    """``handle`` itself, or a gzip stream over it when the file starts with gzip's magic."""
    start = handle.read(2)
    handle.seek(0)
    if start == b"\x1f\x8b":
        import gzip

        return gzip.GzipFile(fileobj=handle, mode="rb")
    return handle
