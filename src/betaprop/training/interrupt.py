"""Ctrl-C during training: the first one finishes the mini-batch, a second one stops at once."""

from __future__ import annotations

import signal
import threading
from typing import Any

__all__ = ["InterruptGuard"]


class InterruptGuard:
    """While active in the main thread, the first Ctrl-C (SIGINT) only sets ``requested``.

    ``fit`` checks the flag after every mini-batch. A second Ctrl-C raises
    ``KeyboardInterrupt`` at once. The previous handler is restored on exit. Nothing is
    installed outside the main thread, when SIGINT is ignored, or when the previous
    handler was not installed from Python (it could not be restored).
    """

    def __init__(self) -> None:
        self.requested = False
        self.installed = False
        self.previous: Any = None

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            return self
        try:
            previous = signal.getsignal(signal.SIGINT)
            if previous is None or previous is signal.SIG_IGN:
                return self
            signal.signal(signal.SIGINT, self._handle)
        except (ValueError, OSError):  # no signals here (an embedded interpreter)
            return self
        self.previous, self.installed = previous, True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self.previous)
            self.installed = False
