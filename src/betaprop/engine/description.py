"""The one description of a network: ``spec()``, ``Network.from_spec`` and the repr.

Model files, checkpoints, pickles, the estimators and the command line all store ``spec()``.
``Network`` inherits ``spec`` and the repr from ``Described``; ``Network.from_spec`` passes
``arguments(spec)`` to the constructor.
"""

from __future__ import annotations

from typing import Any

from .losses import Loss

__all__ = ["Described", "arguments"]


def arguments(spec: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``Network(...)`` that build the architecture ``spec()`` described.

    Descriptions written before normalisation, dropout, init and residual layers existed
    lack those keys: they mean none, 0, the activations' rules and no skip.
    """
    activations = list(spec["activations"])
    return {
        "sizes": spec["sizes"],
        "activation": activations[:-1],
        "output": activations[-1],
        "loss": spec["loss"],
        "dtype": spec["dtype"],
        "seed": spec.get("seed"),
        "normalization": spec.get("normalization"),
        "dropout": spec.get("dropout", 0.0),
        "init": spec.get("init"),
        "residual": spec.get("residual", False),
    }


class Described:
    """``spec()`` and the repr: a network's architecture as a plain dictionary."""

    sizes: tuple[int, ...]
    activations: list[str]
    loss: Loss
    dtype: str
    seed: int | None
    normalization: list[str | None]
    dropout: list[float]
    init: str | None
    residual: list[bool]

    def spec(self) -> dict[str, Any]:
        """The one description of this network: what ``Network.from_spec`` rebuilds it from.

        Model files, checkpoints, the estimators and the command line all store this.
        """
        return {
            "sizes": list(self.sizes),
            "activations": list(self.activations),
            "loss": self.loss.name,
            "dtype": self.dtype,
            "seed": self.seed,
            "normalization": list(self.normalization),
            "dropout": [float(p) for p in self.dropout],
            "init": self.init,
            "residual": list(self.residual),
        }

    def __repr__(self) -> str:
        extra = "".join(
            f", {key}={value!r}"
            for key, value in self.spec().items()
            if key in ("normalization", "dropout", "init", "residual") and value and any(value)
        )
        return (
            f"Network(sizes={list(self.sizes)}, activation={self.activations[:-1]}, "
            f"output={self.activations[-1]!r}, loss={self.loss.name!r}, dtype={self.dtype!r}"
            f"{extra})"
        )
