"""``betaprop bench``: runs ``benchmarks.bench`` of the source checkout with its arguments.

The benchmarks are not part of the installed package (they live in ``benchmarks/`` beside
``src/``), so the command works from a source checkout: the checkout that holds this
package (an editable install), else the current folder.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .options import EXIT_USER_ERROR

__all__ = ["run", "checkout_folders", "find_checkout"]

MISSING = (
    "betaprop bench: error: the benchmarks are not installed with betaprop; run them from a "
    "source checkout of betaprop: `python -m benchmarks.bench` (or `betaprop bench` there)"
)


def checkout_folders() -> list[Path]:
    """Where a checkout may be: above src/betaprop/cli/ (editable install), the current folder."""
    return [Path(__file__).resolve().parents[3], Path.cwd()]


def find_checkout() -> Path | None:
    """The first of ``checkout_folders()`` that holds the benchmarks package, or None."""
    for folder in checkout_folders():
        if (folder / "benchmarks" / "__init__.py").is_file():
            return folder
    return None


def run(argv: list[str]) -> int:
    """Run ``benchmarks.bench.main(argv)``; exit code 2 with one line if there is no checkout."""
    root = find_checkout()
    if root is None:
        print(MISSING, file=sys.stderr)
        return EXIT_USER_ERROR
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import bench

    return int(bench.main(argv))
