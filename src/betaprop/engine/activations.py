"""Activation functions f and their derivatives f', kept as a table (one entry each).

Every function writes into a buffer that the caller allocated once (``out=``), so the
training loop allocates nothing. Inside the engine a batch is a matrix (N_q, n): one column
per example. f' is taken from what is cheapest and exact: sigmoid' = y(1 - y),
tanh' = 1 - y^2, ReLU' = [s > 0].

A new activation is one ``register(...)`` call here; the network, the estimators, the
command line and the tests all read this registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.special import expit, ndtr

__all__ = ["Activation", "Softmax", "register", "get_activation", "ACTIVATIONS", "names"]

Array = np.ndarray
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True)
class Activation:
    """An element-wise activation y = f(s) and its derivative f'(s).

    Parameters
    ----------
    name : registry name.
    forward : ``forward(s, out)`` writes f(s) into ``out``.
    derivative : ``derivative(s, y, out)`` writes f'(s) into ``out``; it may read y = f(s)
        where that is cheaper (sigmoid, tanh).
    init : ``"glorot"`` or ``"he"``, the initialisation that suits the activation (step 1).
    output_only : True for activations that are not element-wise (softmax).
    dead_at_or_below : a neuron whose s never exceeds this value on a batch passes no
        error back (f' = 0 there): ReLU's "dead" neurons; None where that cannot happen.
    saturates_outside : (low, high): outputs beyond these are saturated (f' near 0), as
        for sigmoid and tanh; None for activations that do not saturate.
    """

    name: str
    forward_fn: Callable[[Array, Array], object]
    derivative_fn: Callable[[Array, Array, Array], object]
    init: str = "glorot"
    output_only: bool = False
    dead_at_or_below: float | None = None
    saturates_outside: tuple[float, float] | None = None

    @property
    def elementwise(self) -> bool:
        """Whether y_j depends on s_j alone (so f'(s) is a vector, not a Jacobian)."""
        return True

    def forward(
        self, s: Array, out: Array, lse: Array | None = None, row: Array | None = None
    ) -> None:
        """Step 2: y = f(s) into ``out``. ``lse`` and ``row`` are for softmax only."""
        self.forward_fn(s, out)

    def derivative(self, s: Array, y: Array, out: Array) -> None:
        """f'(s) into ``out``, element by element."""
        self.derivative_fn(s, y, out)

    def multiply_derivative(self, s: Array, y: Array, beta: Array, tmp: Array, row: Array) -> None:
        """beta <- f'(s) ⊙ beta, in place (the Hadamard product of steps 3 and 4)."""
        self.derivative_fn(s, y, tmp)
        beta *= tmp


class Softmax(Activation):
    """y_j = exp(s_j) / sum_r exp(s_r), column by column; output layer only.

    Its Jacobian is not diagonal, so ``multiply_derivative`` applies the Jacobian
    transpose: beta <- y ⊙ (beta - sum_j y_j beta_j). Paired with cross-entropy the engine
    never calls it: the fused output error beta^Q = y^Q - d is used instead.
    """

    @property
    def elementwise(self) -> bool:
        return False

    def forward(
        self, s: Array, out: Array, lse: Array | None = None, row: Array | None = None
    ) -> None:
        """y = softmax(s) into ``out``, and its log-normaliser log sum_j e^{s_j} into ``lse``.

        ``lse`` (1, n) is an output of step 2 like y, kept for cross-entropy's value
        (e_j = d_j (lse - s_j), stable where y_j rounds to 0); ``row`` (1, n) is scratch.
        """
        n = s.shape[1]
        m = np.empty((1, n), dtype=s.dtype) if lse is None else lse[:1]
        total = np.empty((1, n), dtype=s.dtype) if row is None else row[:1]
        # (np.maximum.reduce and np.add.reduce are np.max and np.sum without their wrapper)
        np.maximum.reduce(s, axis=0, keepdims=True, out=m)  # minus the column max: no overflow
        np.subtract(s, m, out=out)
        np.exp(out, out=out)
        np.add.reduce(out, axis=0, keepdims=True, out=total)
        out /= total
        np.log(total, out=total)
        m += total  # lse = m + log sum_j e^{s_j - m}

    def derivative(self, s: Array, y: Array, out: Array) -> None:
        raise TypeError(
            "softmax has no element-wise derivative; use multiply_derivative (Jacobian product)"
        )

    def multiply_derivative(self, s: Array, y: Array, beta: Array, tmp: Array, row: Array) -> None:
        np.multiply(y, beta, out=tmp)
        np.add.reduce(tmp, axis=0, keepdims=True, out=row)  # sum_j y_j beta_j, per example
        beta -= row
        beta *= y


ACTIVATIONS: dict[str, Activation] = {}
_ALIASES: dict[str, str] = {}


def register(activation: Activation, aliases: tuple[str, ...] = ()) -> Activation:
    """Add an activation to the registry under its name (and optional aliases)."""
    ACTIVATIONS[activation.name] = activation
    for alias in aliases:
        _ALIASES[alias] = activation.name
    return activation


def names(hidden_only: bool = False) -> list[str]:
    """Registered names (with aliases); ``hidden_only`` leaves out output-only ones."""
    found = [n for n, a in ACTIVATIONS.items() if not (hidden_only and a.output_only)]
    found += [a for a, n in _ALIASES.items() if not (hidden_only and ACTIVATIONS[n].output_only)]
    return sorted(found)


def get_activation(name: str | Activation, argument: str = "activation") -> Activation:
    """Look up an activation by name; the error names ``argument`` and lists the accepted
    names."""
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str):
        raise TypeError(f"{argument} must be a string, got {name!r}")
    key = _ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        raise ValueError(f"{argument} must be one of {names()}, got {name!r}")
    return ACTIVATIONS[key]


def _elu(s: Array, out: Array) -> None:
    # elu(s) = s for s > 0, exp(s) - 1 otherwise; written as max(s, expm1(min(s, 0)))
    # because expm1(s) >= s for s <= 0: no overflow at large s and no temporary.
    np.minimum(s, 0.0, out=out)
    np.expm1(out, out=out)
    np.maximum(s, out, out=out)


_ZEROS: dict[tuple[tuple[int, ...], np.dtype, str], Array] = {}


def _zeros(like: Array) -> Array:
    """Read-only zeros of ``like``'s shape, dtype and memory order (an inference pass is
    F-contiguous; mixed orders would make the loop strided), allocated once per shape."""
    f_only = like.flags.f_contiguous and not like.flags.c_contiguous
    order: Literal["C", "F"] = "F" if f_only else "C"
    key = (like.shape, like.dtype, order)
    zeros = _ZEROS.get(key)
    if zeros is None:
        if len(_ZEROS) >= 32:
            _ZEROS.clear()
        zeros = _ZEROS[key] = np.zeros(like.shape, like.dtype, order=order)
        zeros.setflags(write=False)
    return zeros


def _relu(s: Array, out: Array) -> None:
    # max(s, 0) against an array of zeros: NumPy's maximum has no vectorised loop for a
    # broadcast scalar 0, and takes about three times as long (13 µs vs 4 µs, 256 x 128)
    np.maximum(s, _zeros(s), out=out)


# exp is capped at e^{s_max}, s_max = log(largest float) − 20, so that y and the sums of a batch's
# y stay finite (an overflow to inf would poison every later step); below the cap it is exact.
_EXP_CAP = {np.dtype(t): math.log(float(np.finfo(t).max)) - 20.0 for t in (np.float32, np.float64)}


def _exp(s: Array, out: Array) -> None:
    np.minimum(s, _EXP_CAP.get(out.dtype, 689.0), out=out)  # y = e^min(s, s_max)
    np.exp(out, out=out)


def _gelu_derivative(s: Array, y: Array, out: Array) -> None:
    # gelu'(s) = Phi(s) + s * phi(s),  phi(s) = exp(-s^2 / 2) / sqrt(2 pi)
    np.multiply(s, s, out=out)
    out *= -0.5
    np.exp(out, out=out)
    out *= s
    out *= _INV_SQRT_2PI
    out += ndtr(s)  # the one temporary in the activation table


def _leaky_relu_derivative(s: Array, y: Array, out: Array) -> None:
    np.greater(s, 0.0, out=out)  # [s > 0]
    out *= 1.0 - 0.01
    out += 0.01


def _sigmoid_derivative(s: Array, y: Array, out: Array) -> None:
    np.subtract(1.0, y, out=out)  # y (1 - y)
    out *= y


def _tanh_derivative(s: Array, y: Array, out: Array) -> None:
    np.square(y, out=out)  # 1 - y^2
    np.subtract(1.0, out, out=out)


def _elu_derivative(s: Array, y: Array, out: Array) -> None:
    np.add(y, 1.0, out=out)  # exp(s) = y + 1 for s <= 0, and 1 for s > 0
    np.minimum(out, 1.0, out=out)


# fmt: off
register(Activation(
    "identity",
    forward_fn=lambda s, out: np.copyto(out, s),                    # y = s
    derivative_fn=lambda s, y, out: out.fill(1.0),                  # 1
))
register(Activation(
    "sigmoid",
    forward_fn=lambda s, out: expit(s, out=out),                    # 1 / (1 + e^-s), stable
    derivative_fn=_sigmoid_derivative,                              # y (1 - y)
    saturates_outside=(0.01, 0.99),
), aliases=("logistic",))
register(Activation(
    "tanh",
    forward_fn=lambda s, out: np.tanh(s, out=out),
    derivative_fn=_tanh_derivative,                                 # 1 - y^2
    saturates_outside=(-0.99, 0.99),
))
register(Activation(
    "relu",
    forward_fn=_relu,                                               # max(s, 0)
    derivative_fn=lambda s, y, out: np.greater(s, 0.0, out=out),    # [s > 0]
    init="he",
    dead_at_or_below=0.0,
))
register(Activation(
    "leaky_relu",
    forward_fn=lambda s, out: np.maximum(s, np.multiply(s, 0.01, out=out), out=out),
    derivative_fn=_leaky_relu_derivative,                           # 1 if s > 0 else 0.01
    init="he",
))
register(Activation(
    "elu",
    forward_fn=_elu,                                                # s or e^s - 1
    derivative_fn=_elu_derivative,                                  # 1 or y + 1
    init="he",
))
register(Activation(
    "softplus",
    forward_fn=lambda s, out: np.logaddexp(0.0, s, out=out),        # log(1 + e^s), stable
    derivative_fn=lambda s, y, out: expit(s, out=out),              # sigmoid(s)
))
register(Activation(
    "gelu",
    forward_fn=lambda s, out: np.multiply(ndtr(s, out=out), s, out=out),  # s Phi(s), exact
    derivative_fn=_gelu_derivative,                                 # Phi(s) + s phi(s)
    init="he",
))
register(Activation(
    "exp",
    forward_fn=_exp,                                                # e^s (Poisson's log link)
    derivative_fn=lambda s, y, out: np.copyto(out, y),              # e^s = y
    output_only=True,
))
register(Softmax(
    "softmax",
    forward_fn=lambda s, out: None,
    derivative_fn=lambda s, y, out: None,
    output_only=True,
))
# fmt: on
