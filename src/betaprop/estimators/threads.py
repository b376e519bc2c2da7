"""One BLAS thread while training small networks: waking threads costs more than they save."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

__all__ = ["blas_threads_for"]

_controller: Any = None


def blas_threads_for(sizes: Sequence[int], batch: int) -> Any:
    """One BLAS thread while training if every per-batch product is small, else no change.

    "Small": fewer multiply-adds in a layer's product W^q y^{q-1} for one batch than
    ``betaprop.estimators.SINGLE_THREAD_BELOW`` (read at each call, so it can be changed).
    """
    global _controller
    from . import SINGLE_THREAD_BELOW

    largest = max(sizes[q] * sizes[q - 1] for q in range(1, len(sizes))) * batch
    if largest >= SINGLE_THREAD_BELOW:
        return contextlib.nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
