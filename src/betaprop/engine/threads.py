"""Threads and work buffers of a ``Network``: the training lock, each thread's workspace.

Passes that do not train may run from several threads at once, each in its own work
buffers (``engine.workspace.Buffers``); training one network from two threads at once is
refused. ``Network`` inherits these methods from ``Scratch``.
"""

from __future__ import annotations

import threading

from .workspace import Buffers, Workspace

__all__ = ["TrainingLock", "Scratch"]


class TrainingLock:
    """Held while a thread trains the network (``Network.training_lock``): reentrant for that
    thread (``fit`` holds it around its ``train_step`` calls), refused to any other."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                "this network is already being trained in another thread; train one network "
                "per thread (net.copy() gives an independent one), or one fit after the other"
            )

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Scratch:
    """The work buffers of a network (scratch, never saved) and its training lock."""

    _buffers: Buffers
    _training: TrainingLock
    memory: str

    def training_lock(self) -> TrainingLock:
        """A context manager held while a thread trains this network (``fit``, ``train_step``,
        ``loss_and_gradients``): entering it while another thread holds it raises
        RuntimeError; the thread that holds it may enter it again."""
        return self._training

    def workspace(self, n: int) -> Workspace:
        """This thread's work buffers for batches of n examples (scratch: valid until its
        next pass)."""
        return self._buffers.get(n)

    def work_bytes(self, n: int) -> int:
        """Bytes of the work buffers that batches of n examples use."""
        return self.workspace(n).nbytes

    @property
    def s(self) -> list:
        return self._pass("s").s

    @property
    def y(self) -> list:
        return self._pass("y").y

    @property
    def beta(self) -> list:
        return self._pass("beta").beta

    def _pass(self, name: str) -> Workspace:
        """The workspace of this thread's last forward pass."""
        last = self._buffers.last
        if last is None:
            raise RuntimeError("no pass has run yet: call forward or loss_and_gradients first")
        if self.memory == "recompute" and name in ("s", "y", "beta"):
            raise RuntimeError(
                f"net.{name} is not kept for every layer with memory='recompute' (layers "
                "between kept ones share buffers); inspect a copy with memory='all': "
                "net.copy()"
            )
        return last
