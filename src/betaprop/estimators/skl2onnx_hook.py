"""skl2onnx learns betaprop's converters as soon as both are imported, in either order.

skl2onnx has no plug-in mechanism (its converters are a table filled by
``update_registered_converter``), and importing it takes seconds, so betaprop never imports
it: if skl2onnx is already imported, ``onnx.register()`` runs now; otherwise a finder on
``sys.meta_path`` waits for skl2onnx's import and runs it right after skl2onnx's own code.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["register_with_skl2onnx_when_imported"]

_MODULE = "skl2onnx"


def _register() -> None:
    """``onnx.register()``; a failure warns (naming the call to make) instead of breaking
    the user's ``import skl2onnx``."""
    try:
        from .onnx import register

        register()
    except Exception as error:  # noqa: BLE001 - a converter that cannot load must not block
        warnings.warn(
            f"betaprop could not register its skl2onnx converters ({error}); call "
            "betaprop.estimators.onnx.register() to see why",
            RuntimeWarning,
            stacklevel=2,
        )


class _AfterImport(importlib.abc.Loader):
    """skl2onnx's own loader, then ``_register()``."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.loader.exec_module(module)
        _register()


class _Skl2onnxFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps skl2onnx's loader, once, then leaves ``sys.meta_path``."""

    _lock = threading.Lock()

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        if fullname != _MODULE:
            return None
        with self._lock:
            if self not in sys.meta_path:  # another thread got here first
                return None
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the finders after this one
        if spec is not None and spec.loader is not None:
            spec.loader = _AfterImport(spec.loader)
        return spec


def register_with_skl2onnx_when_imported() -> None:
    """Register the converters now if skl2onnx is imported, else right after its import."""
    if _MODULE in sys.modules:
        _register()
    elif not any(isinstance(finder, _Skl2onnxFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Skl2onnxFinder())
