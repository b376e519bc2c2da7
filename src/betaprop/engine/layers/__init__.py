"""Layer operations: one object per operation, the registry, and the pipeline of each layer.

``OPERATIONS`` names every operation class; ``NORMALIZATIONS`` the ones that
``normalization=`` selects. ``pipeline`` builds layer q's operations in step 2's order:
affine, [normalisation], activation, [dropout], [residual sum]. A new operation is one
module here and one line in these tables; tests/test_conformance.py runs every entry.
"""

from __future__ import annotations

from .activation import Activation
from .affine import Affine
from .base import Operation
from .batch_norm import BatchNorm
from .dropout import Dropout
from .layer_norm import LayerNorm
from .residual import Residual

__all__ = ["OPERATIONS", "NORMALIZATIONS", "Operation", "pipeline"]

OPERATIONS: dict[str, type[Operation]] = {
    op.name: op for op in (Affine, BatchNorm, LayerNorm, Activation, Dropout, Residual)
}
NORMALIZATIONS: dict[str, type[Operation]] = {"batch": BatchNorm, "layer": LayerNorm}


def pipeline(normalization: str | None, p: float, residual: bool = False) -> list[Operation]:
    """The operations of one layer, in step 2's order (step 4 runs them backwards)."""
    ops: list[Operation] = [Affine()]
    if normalization is not None:
        ops.append(NORMALIZATIONS[normalization]())
    ops.append(Activation())
    if p:
        ops.append(Dropout())
    if residual:
        ops.append(Residual())
    return ops
