"""Losses: the value E and the output-layer error of step 3, one formula each.

The seed's step 3 is the gradient of E = ½‖y − d‖² through the output activation:
delta^Q = (y^Q − d) ⊙ f'(s^Q). For the canonical pairs (identity + squared error,
softmax + cross-entropy, sigmoid + binary cross-entropy, exp + Poisson) the derivative of the
activation cancels against that of the loss and delta^Q = y^Q − d exactly; the loss computes
that fused form, never the numerically unstable chain (``Loss.output_delta``).

Each loss is written once, as its per-element terms e_ji with E_i = Σ_j e_ji (the loss of
example i); the batch value, the per-example values and the weighted mean are sums of those
terms. Columns are examples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy

from .activations import Activation

__all__ = ["Loss", "register", "get_loss", "check_pair", "LOSSES"]

Array = np.ndarray
# the kinds of target a loss learns: what ``sample_targets`` draws and ``score`` compares
_TARGETS = ("one_hot", "binary", "real", "counts")


@dataclass(frozen=True)
class Loss:
    """A loss E(y, d), averaged over the n columns of a batch.

    Parameters
    ----------
    name : registry name.
    canonical_output : the output activation for which delta^Q = y^Q - d (fused form).
    terms_fn : ``terms_fn(s, y, d, lse, out, tmp)`` writes the terms e_ji of
        E_i = sum_j e_ji into ``out`` (N_Q, n), ``tmp`` (N_Q, n) being scratch; ``lse``
        (1, n) is log sum_j e^{s_j}, which step 2 of a softmax layer writes beside y (None
        for other outputs).
    output_gradient_fn : ``output_gradient_fn(y, d, out)`` writes dE/dy (the seed's
        y^Q - d for the squared error); used by the general chain of step 3.
    allowed_outputs : output activations this loss accepts (None: any).
    targets : what d holds: "one_hot" (one class per example), "binary" (0/1 per output),
        "real" or "counts" (integers >= 0).
    seed_form : True for the seed's own loss, E = ½‖y − d‖², whose dE/dy is y − d.
    """

    name: str
    canonical_output: str
    terms_fn: Callable[[Array, Array, Array, Array | None, Array, Array], object]
    output_gradient_fn: Callable[[Array, Array, Array], object]
    allowed_outputs: tuple[str, ...] | None = None
    targets: str = "real"
    seed_form: bool = False

    @property
    def classification(self) -> bool:
        """Whether the targets are classes (accuracy is the score), rather than numbers (R²)."""
        return self.targets in ("one_hot", "binary")

    def fuses(self, f: Activation) -> bool:
        """Whether step 3 with output activation f is the fused delta^Q = y^Q - d."""
        return f.name == self.canonical_output  # registry names: aliases resolve to them

    def output_delta(
        self, f: Activation, s: Array, y: Array, d: Array, out: Array, tmp: Array, row: Array
    ) -> None:
        """Step 3: delta^Q = dE/dy^Q ⊙ f'(s^Q) into ``out``, fused to y^Q - d where exact.

        ``tmp`` (N_Q, n) and ``row`` (1, n) are scratch for the general chain.
        """
        if self.fuses(f):
            np.subtract(y, d, out=out)
        else:
            self.output_gradient_fn(y, d, out)
            f.multiply_derivative(s, y, out, tmp, row)

    def value(
        self,
        s: Array,
        y: Array,
        d: Array,
        lse: Array | None = None,
        w: Array | None = None,
        scratch: tuple[Array, Array, Array] | None = None,
    ) -> float:
        """Mean loss over the batch of n = s.shape[1] examples, (1/n) sum_i E_i.

        ``lse`` (1, n): log sum_j e^{s_j}, as step 2 of a softmax output leaves it (computed
        here when None). With per-example weights ``w`` (1, n): the weighted mean
        (1/n) sum_i w_i E_i. ``scratch``: two (N_Q, n) arrays and a (1, n) row to write
        into (allocated when None); nothing else is written.
        """
        if scratch is None:
            scratch = (np.empty_like(y), np.empty_like(y), np.empty((1, y.shape[1]), y.dtype))
        out, tmp, row = scratch
        self.terms_fn(s, y, d, lse, out, tmp)
        if w is None:
            return float(np.add.reduce(out, axis=None)) / s.shape[1]
        np.add.reduce(out, axis=0, keepdims=True, out=row)  # E_i, one per column
        return float(np.vdot(row, w)) / s.shape[1]

    def per_example(self, s: Array, y: Array, d: Array, lse: Array | None = None) -> Array:
        """E_i for each example (column), as a new (n,) array."""
        out = np.empty_like(y)
        self.terms_fn(s, y, d, lse, out, np.empty_like(y))
        return out.sum(axis=0)

    def output_gradient(self, y: Array, d: Array, out: Array) -> None:
        """dE/dy for each example (before the 1/n of the batch mean)."""
        self.output_gradient_fn(y, d, out)

    def sample_targets(self, rng: np.random.Generator, n: int, N: int) -> Array:
        """n valid random targets of N outputs, shape (n, N) (gradient checks, traces)."""
        if self.targets == "one_hot":
            return np.eye(N)[rng.integers(0, N, size=n)]
        if self.targets == "binary":
            return rng.integers(0, 2, size=(n, N)).astype(np.float64)
        if self.targets == "counts":
            return rng.poisson(2.0, size=(n, N)).astype(np.float64)
        return rng.normal(size=(n, N))

    def outputs_for(self, n_classes: int) -> int:
        """How many output neurons this loss needs to tell ``n_classes`` classes apart."""
        if self.targets == "binary":
            if n_classes != 2:
                raise ValueError(
                    f"{self.name} needs 2 classes, got {n_classes}: use cross_entropy (it has "
                    "one output, the probability of the second class)"
                )
            return 1
        return n_classes

    def score(self, P: Array, D: Array) -> float:
        """Accuracy for classes, R² for numbers; P and D of shape (n, N_Q)."""
        if self.classification:
            if P.shape[1] == 1 or self.targets == "binary":
                return float(np.mean(np.all((P > 0.5) == (D > 0.5), axis=1)))
            return float(np.mean(P.argmax(axis=1) == D.argmax(axis=1)))
        residual = float(np.sum((D - P) ** 2))
        spread = float(np.sum((D - D.mean(axis=0)) ** 2))
        return 1.0 - residual / spread if spread > 0 else 0.0


def _squared_error(s: Array, y: Array, d: Array, lse: Array | None, out: Array, tmp: Array) -> None:
    np.subtract(y, d, out=out)  # e_j = ½ (y_j − d_j)^2, the seed's step 3
    np.square(out, out=out)
    out *= 0.5


def _cross_entropy(s: Array, y: Array, d: Array, lse: Array | None, out: Array, tmp: Array) -> None:
    # e_j = −d_j log y_j = d_j (logsumexp(s) − s_j): never the log of a rounded-off 0
    if lse is None:  # not from step 2 (a single example, say): compute it here
        top = s.max(axis=0, keepdims=True)
        lse = top + np.log(np.exp(s - top).sum(axis=0, keepdims=True))
    np.subtract(lse, s, out=out)
    out *= d


def _binary_cross_entropy(
    s: Array, y: Array, d: Array, lse: Array | None, out: Array, tmp: Array
) -> None:
    # e_j = −[d_j log y_j + (1 − d_j) log(1 − y_j)] = log(1 + e^{s_j}) − d_j s_j
    np.logaddexp(0.0, s, out=out)
    out -= np.multiply(d, s, out=tmp)


def _poisson(s: Array, y: Array, d: Array, lse: Array | None, out: Array, tmp: Array) -> None:
    # Half the Poisson deviance with log link y = e^s:
    # e_j = y_j − d_j s_j + d_j log d_j − d_j  (0 when y = d; the last two terms are constant)
    xlogy(d, d, out=out)
    out -= d
    out += y
    out -= np.multiply(d, s, out=tmp)


def _poisson_output_gradient(y: Array, d: Array, out: Array) -> None:
    np.divide(d, y, out=out)  # dE/dy = 1 − d / y
    np.subtract(1.0, out, out=out)


def _binary_cross_entropy_output_gradient(y: Array, d: Array, out: Array) -> None:
    np.subtract(y, d, out=out)  # dE/dy = (y − d) / (y (1 − y))
    out /= y * (1.0 - y)


LOSSES: dict[str, Loss] = {}


def register(loss: Loss) -> Loss:
    """Add a loss to the registry under its name."""
    if loss.targets not in _TARGETS:
        raise ValueError(f"targets must be one of {list(_TARGETS)}, got {loss.targets!r}")
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
    terms_fn=_squared_error,
    output_gradient_fn=lambda y, d, out: np.subtract(y, d, out=out),  # y − d
    seed_form=True,
))
register(Loss(
    "cross_entropy",
    canonical_output="softmax",
    terms_fn=_cross_entropy,
    output_gradient_fn=lambda y, d, out: np.negative(np.divide(d, y, out=out), out=out),  # −d/y
    allowed_outputs=("softmax",),
    targets="one_hot",
))
register(Loss(
    "binary_cross_entropy",
    canonical_output="sigmoid",
    terms_fn=_binary_cross_entropy,
    output_gradient_fn=_binary_cross_entropy_output_gradient,
    allowed_outputs=("sigmoid", "logistic"),
    targets="binary",
))
register(Loss(
    "poisson",
    canonical_output="exp",
    terms_fn=_poisson,
    output_gradient_fn=_poisson_output_gradient,
    allowed_outputs=("exp",),
    targets="counts",
))
# fmt: on
