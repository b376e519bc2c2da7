"""The one error of reading data: ``DataError``, whose message is one line."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A data file or data set name that cannot be used; the message is one line."""
