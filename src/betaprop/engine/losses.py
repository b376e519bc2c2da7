"""Losses: the value E and the output-layer error of step 3.

The seed's step 3 is the gradient of E = ½‖y − d‖² through the output activation:
delta^Q = (y^Q − d) ⊙ f'(s^Q). For the canonical pairs (identity + squared error,
softmax + cross-entropy, sigmoid + binary cross-entropy, exp + Poisson) the derivative of the
activation cancels against that of the loss and delta^Q = y^Q − d exactly; the engine
computes that fused form, never the numerically unstable chain, and computes the loss
value from the pre-activations s^Q (log-sum-exp).

Every value is the mean over the batch of the per-example loss; columns are examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

__all__ = ["Loss", "register", "get_loss", "LOSSES"]

Array = np.ndarray


@dataclass(frozen=True)
class Loss:
    """A loss E(y, d), averaged over the n columns of a batch.

    Parameters
    ----------
    name : registry name.
    canonical_output : the output activation for which delta^Q = y^Q - d (fused form).
    value_fn : ``value_fn(s, y, d, tmp, row) -> float``, the summed per-example loss;
        ``tmp`` (N_Q, n) and ``row`` (2, n) are scratch buffers, called right after step 2
        (cross-entropy reads the column max and sum that the softmax left in ``row``).
    output_gradient_fn : ``output_gradient_fn(y, d, out)`` writes dE/dy (the seed's
        y^Q - d for the squared error); used by the general chain.
    allowed_outputs : output activations this loss accepts (None: any).
    per_example_fn : ``per_example_fn(s, y, d, tmp, row) -> row[k:k+1]``, the loss of each
        example as a (1, n) view of ``row``; needed for per-example weights only.
    """

    name: str
    canonical_output: str
    value_fn: Callable[[Array, Array, Array, Array, Array], float]
    output_gradient_fn: Callable[[Array, Array, Array], object]
    allowed_outputs: tuple[str, ...] | None = None
    classification: bool = False
    per_example_fn: Callable[[Array, Array, Array, Array, Array], Array] | None = None

    def value(
        self, s: Array, y: Array, d: Array, tmp: Array, row: Array, w: Array | None = None
    ) -> float:
        """Mean loss over the batch of n = s.shape[1] examples.

        With per-example weights ``w`` (1, n): the weighted mean (1/n) sum_i w_i E_i.
        ``row`` must be the (2, n) row that the output layer's forward pass (step 2) has just
        used: cross-entropy reads the softmax's column max and sum of exponentials from it.
        """
        if w is None:
            return self.value_fn(s, y, d, tmp, row) / s.shape[1]
        if self.per_example_fn is None:
            raise TypeError(f"loss {self.name!r} has no per-example form: it cannot be weighted")
        return float(np.vdot(self.per_example_fn(s, y, d, tmp, row), w)) / s.shape[1]

    def output_gradient(self, y: Array, d: Array, out: Array) -> None:
        """dE/dy for each example (before the 1/n of the batch mean)."""
        self.output_gradient_fn(y, d, out)


def _squared_error(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> float:
    # E = ½ Σ_j (y_j − d_j)^2 per example, the seed's step 3
    np.subtract(y, d, out=tmp)
    return 0.5 * float(np.vdot(tmp, tmp))


def _cross_entropy(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> float:
    # E = −Σ_j d_j log y_j with log y_j = s_j − logsumexp(s), never log of a rounded-off 0.
    # Step 2's softmax left m = max_j s_j in row[0] and Σ_r e^{s_r − m} (>= 1) in row[1],
    # so logsumexp(s) = m + log Σ_r e^{s_r − m}: its exponentials are not computed again
    m, lse = row[:1], row[1:]
    np.log(lse, out=lse)
    lse += m  # logsumexp(s), in place of the sum (read once, after step 2)
    np.subtract(s, lse, out=tmp)  # log y
    tmp *= d
    return -float(np.add.reduce(tmp, axis=None))  # tmp.sum() without its Python wrapper


def _binary_cross_entropy(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> float:
    # E = −Σ_j [d_j log y_j + (1 − d_j) log(1 − y_j)] = Σ_j [log(1 + e^{s_j}) − d_j s_j]
    np.logaddexp(0.0, s, out=tmp)
    total = float(tmp.sum())
    np.multiply(d, s, out=tmp)
    return total - float(tmp.sum())


def _squared_error_per_example(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> Array:
    np.subtract(y, d, out=tmp)  # E_i = ½ Σ_j (y_ji − d_ji)^2
    np.square(tmp, out=tmp)
    np.sum(tmp, axis=0, keepdims=True, out=row[:1])
    row[:1] *= 0.5
    return row[:1]


def _cross_entropy_per_example(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> Array:
    _cross_entropy(s, y, d, tmp, row)  # leaves d_j log y_j in tmp
    np.sum(tmp, axis=0, keepdims=True, out=row[:1])  # E_i = −Σ_j d_ji log y_ji
    np.negative(row[:1], out=row[:1])
    return row[:1]


def _binary_cross_entropy_per_example(
    s: Array, y: Array, d: Array, tmp: Array, row: Array
) -> Array:
    np.logaddexp(0.0, s, out=tmp)  # E_i = Σ_j [log(1 + e^{s_ji}) − d_ji s_ji]
    np.sum(tmp, axis=0, keepdims=True, out=row[:1])
    np.multiply(d, s, out=tmp)
    np.sum(tmp, axis=0, keepdims=True, out=row[1:])
    row[:1] -= row[1:]
    return row[:1]


def _poisson(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> float:
    # Half the Poisson deviance with log link y = e^s, per example
    # E = Σ_j [y_j − d_j s_j + d_j log d_j − d_j]  (0 when y = d; the last two terms are constant)
    np.multiply(d, s, out=tmp)
    total = float(y.sum()) - float(tmp.sum())
    xlogy(d, d, out=tmp)
    tmp -= d
    return total + float(tmp.sum())


def _poisson_per_example(s: Array, y: Array, d: Array, tmp: Array, row: Array) -> Array:
    xlogy(d, d, out=tmp)
    tmp -= d
    tmp += y
    np.sum(tmp, axis=0, keepdims=True, out=row[:1])
    np.multiply(d, s, out=tmp)
    np.sum(tmp, axis=0, keepdims=True, out=row[1:])
    row[:1] -= row[1:]
    return row[:1]


def _poisson_output_gradient(y: Array, d: Array, out: Array) -> None:
    np.divide(d, y, out=out)  # dE/dy = 1 − d / y
    np.subtract(1.0, out, out=out)


LOSSES: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    """Add a loss to the registry under its name."""
    LOSSES[loss.name] = loss
    return loss


def get_loss(name: str | Loss) -> Loss:
    """Look up a loss by name; the error lists the accepted names."""
    if isinstance(name, Loss):
        return name
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]


def check_pair(loss: Loss, output: str) -> None:
    """Raise if ``output`` cannot be the output activation for ``loss``."""
    if loss.allowed_outputs is not None and output not in loss.allowed_outputs:
        raise ValueError(
            f"output must be one of {list(loss.allowed_outputs)} for loss {loss.name!r}, "
            f"got {output!r}"
        )


# fmt: off
register(Loss(
    "squared_error",
    canonical_output="identity",
    value_fn=_squared_error,
    output_gradient_fn=lambda y, d, out: np.subtract(y, d, out=out),  # y − d
    per_example_fn=_squared_error_per_example,
))
register(Loss(
    "cross_entropy",
    canonical_output="softmax",
    value_fn=_cross_entropy,
    output_gradient_fn=lambda y, d, out: np.negative(np.divide(d, y, out=out), out=out),
    allowed_outputs=("softmax",),
    classification=True,
    per_example_fn=_cross_entropy_per_example,
))
register(Loss(
    "binary_cross_entropy",
    canonical_output="sigmoid",
    value_fn=_binary_cross_entropy,
    # dE/dy = (y − d) / (y (1 − y))
    output_gradient_fn=lambda y, d, out: np.divide(
        np.subtract(y, d, out=out), y * (1.0 - y), out=out
    ),
    allowed_outputs=("sigmoid", "logistic"),
    classification=True,
    per_example_fn=_binary_cross_entropy_per_example,
))
register(Loss(
    "poisson",
    canonical_output="exp",
    value_fn=_poisson,
    output_gradient_fn=_poisson_output_gradient,
    allowed_outputs=("exp",),
    per_example_fn=_poisson_per_example,
))
# fmt: on
