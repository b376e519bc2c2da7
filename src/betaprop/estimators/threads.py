"""One BLAS thread while training small networks: waking threads costs more than they save.

The BLAS thread count is a setting of the whole process (OpenBLAS with pthreads, MKL), so
fits running at once in threads (joblib's threading backend, GridSearchCV) share one limit:
the first fit in records the process's limits and sets one thread, the last one out restores
them. Each fit entering and restoring on its own restores in the wrong order when fits
overlap: the second fit in records the first's limit of 1 and, leaving last, puts it back.

threadpoolctl >= 3.8 lets only one thread change a process-wide OpenBLAS pool (the first
that sets it, until it gives control back); the last fit out may be another thread than the
first in, so each change here gives control back at once (``clear_controlling_thread``,
which only clears what the calling thread holds: a limit the user holds in another thread
is left alone, and then our changes do nothing, as threadpoolctl intends).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["blas_threads_for"]


def _give_back_control() -> None:
    """threadpoolctl >= 3.8: release OpenBLAS's controlling thread if this thread holds it."""
    from threadpoolctl import OpenBLASController

    clear = getattr(OpenBLASController, "clear_controlling_thread", None)
    if clear is not None:
        clear()


class _SharedLimit:
    """One BLAS thread while at least one fit is inside; the original limits after the last.

    A lock and a counter: the first entrant records the limits and sets one thread, the last
    one out restores what the first recorded.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._limiter: Any = None  # threadpoolctl's limiter: it holds the original limits
        self._controller: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._holders == 0:
                if self._controller is None:
                    from threadpoolctl import ThreadpoolController

                    self._controller = ThreadpoolController()
                self._limiter = self._controller.limit(limits=1, user_api="blas")
                _give_back_control()
            self._holders += 1
        try:
            yield
        finally:
            with self._lock:
                self._holders -= 1
                if self._holders == 0:
                    self._limiter.restore_original_limits()
                    _give_back_control()
                    self._limiter = None


_one_thread = _SharedLimit()


def blas_threads_for(sizes: Sequence[int], batch: int) -> Any:
    """One BLAS thread while training if every per-batch product is small, else no change.

    "Small": fewer multiply-adds in a layer's product W^q y^{q-1} for one batch than
    ``betaprop.estimators.SINGLE_THREAD_BELOW`` (read at each call, so it can be changed).
    Fits overlapping in threads share the limit: once the last has ended, the process has
    the limits it had before the first began (a large fit overlapping small ones also runs
    with one thread meanwhile).
    """
    from . import SINGLE_THREAD_BELOW

    largest = max(sizes[q] * sizes[q - 1] for q in range(1, len(sizes))) * batch
    if largest >= SINGLE_THREAD_BELOW:
        return contextlib.nullcontext()
    return _one_thread()
