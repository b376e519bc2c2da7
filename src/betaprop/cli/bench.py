"""``betaprop bench``: hands its arguments to the benchmark module, ``betaprop.bench``."""

from __future__ import annotations

import sys

from .options import EXIT_USER_ERROR

__all__ = ["run"]


def run(argv: list[str]) -> int:
    """Run ``betaprop.bench.main(argv)``; exit code 2 with one line if it is not installed."""
    try:
        from .. import bench  # type: ignore[attr-defined]
    except ModuleNotFoundError as error:
        if error.name != "betaprop.bench":
            raise
        print(
            "betaprop bench: error: the benchmark module betaprop.bench is missing from this "
            "installation",
            file=sys.stderr,
        )
        return EXIT_USER_ERROR
    return int(bench.main(argv))
