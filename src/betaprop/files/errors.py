"""The one error of reading data: ``DataError``, whose message is one line."""

from __future__ import annotations

__all__ = ["DataError", "first_line"]


class DataError(ValueError):
    """A data file or data set name that cannot be used; the message is one line."""


def first_line(error: BaseException) -> str:
    """The first line of a library's error message (pandas', pyarrow's), or the error's
    type when it has none: what a one-line ``DataError`` quotes of it."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
