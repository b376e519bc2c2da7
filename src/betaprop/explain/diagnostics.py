"""Looking inside training: the size of the local errors beta^q and gradients per layer.

The seed's debugging advice, made measurable: "in the output layer beta is large, in deep
layers it fades" (vanishing gradients; remedies: ReLU, better initialisation,
normalisation). ``Diagnostics`` is a training callback. After every epoch it runs steps 2-5
on a fixed probe batch (a copy of the network, so training itself is not touched) and
records, per layer q, into ``history.extra`` (with batch normalisation or dropout this is a
training pass, as in ``fit``: the probe batch's own statistics, and masks drawn from a copy
of the network's dropout generator):

- ``beta_rms_q``: the RMS over neurons and examples of the per-example local error beta^q.
  The engine folds the 1/n of the batch mean into ``net.beta``; this is ``n * net.beta[q]``,
  the seed's beta^q of one example, so it does not depend on the probe size.
- ``grad_rms_q``: the RMS of dE/dW^q, the gradient of the mean loss over the probe batch.
- ``dead_fraction_q`` (ReLU layers): the fraction of units whose pre-activation s^q is
  <= 0 on every probe example (their f' is 0: no error flows back through them).
- ``saturated_fraction_q`` (sigmoid and tanh layers): the fraction of unit outputs y^q in
  the flat tails (sigmoid y < 0.01 or y > 0.99, tanh |y| > 0.99), where f' < 0.01 (0.02 for
  tanh).

A warning (``GradientWarning``, also kept in ``Diagnostics.warnings`` and in
``history.extra["warnings"]``) names the layer when the local errors vanish,
RMS beta^q / RMS beta^Q < ``vanish_ratio`` (1e-4), or explode, ratio > ``explode_ratio``
(1e4), and suggests the seed's remedies.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..engine.network import Network
from ..training.loop import Callback, History

__all__ = ["Diagnostics", "GradientWarning", "REMEDIES"]

Array = np.ndarray

REMEDIES = (
    "ReLU-family hidden activations instead of sigmoid/tanh, a better initialisation "
    "(He for ReLU, Glorot for sigmoid/tanh), normalised inputs, fewer layers or a smaller "
    "learning rate"
)


class GradientWarning(UserWarning):
    """Local errors beta^q vanish or explode in some layer."""


class Diagnostics(Callback):
    """Per-layer sizes of beta^q and dW^q, dead and saturated units, once per epoch.

    Parameters
    ----------
    X, D : the probe batch, (n, N_0) and (n, N_Q), e.g. the training data; at most
        ``max_examples`` evenly spaced rows are used.
    max_examples : size limit of the probe batch.
    vanish_ratio, explode_ratio : warn when RMS beta^q / RMS beta^Q leaves this range.

    After training, ``history.extra`` holds the series named in the module docstring and
    ``warnings`` the (epoch, layer, message) of every warning (once per layer and kind).
    """

    def __init__(
        self,
        X: Array,
        D: Array,
        *,
        max_examples: int = 1024,
        vanish_ratio: float = 1e-4,
        explode_ratio: float = 1e4,
    ) -> None:
        X, D = np.asarray(X), np.asarray(D)
        if X.ndim != 2 or D.ndim != 2 or len(X) != len(D) or len(X) == 0:
            raise ValueError(
                f"X and D must be 2-D with the same number of rows >= 1, got shapes "
                f"{X.shape} and {D.shape}"
            )
        if not isinstance(max_examples, int) or max_examples < 1:
            raise ValueError(f"max_examples must be an integer >= 1, got {max_examples!r}")
        if not 0 < vanish_ratio < 1 < explode_ratio:
            raise ValueError(
                "vanish_ratio and explode_ratio must satisfy 0 < vanish_ratio < 1 < "
                f"explode_ratio, got {vanish_ratio!r} and {explode_ratio!r}"
            )
        rows = np.linspace(0, len(X) - 1, min(len(X), max_examples)).round().astype(int)
        self.X, self.D = X[rows], D[rows]
        self.vanish_ratio = vanish_ratio
        self.explode_ratio = explode_ratio
        self.warnings: list[tuple[int, int, str]] = []
        self._warned: set[tuple[int, str]] = set()
        self._twin: Network | None = None

    def on_train_begin(self, net: Network, history: History) -> None:
        self._twin = net.copy()
        history.extra.setdefault("warnings", [])

    def measure(self, net: Network) -> dict[str, float]:
        """Steps 2-5 on the probe batch with the current weights; the per-layer figures."""
        twin = self._twin if self._twin is not None else net.copy()
        twin.params[...] = net.params
        # a training pass (batch statistics, dropout masks) on the copy: its masks come
        # from the network's generator as it is now, so the figures depend on the weights
        # and that state alone (a resumed run records the same numbers), and the
        # network's own generator and running statistics are not touched
        twin.stats[...] = net.stats
        twin.dropout_rng.bit_generator.state = net.dropout_rng.bit_generator.state
        twin.loss_and_gradients(self.X, self.D)
        n, Q = len(self.X), net.Q
        figures: dict[str, float] = {}
        for q in range(1, Q + 1):
            beta = twin.beta[q]
            figures[f"beta_rms_{q}"] = n * float(np.sqrt(np.vdot(beta, beta) / beta.size))
            dW = twin.dW[q]
            figures[f"grad_rms_{q}"] = float(np.sqrt(np.vdot(dW, dW) / dW.size))
            f = net.f[q]
            if q < Q and f.dead_at_or_below is not None:
                alive = (twin.s[q] > f.dead_at_or_below).any(axis=1)
                figures[f"dead_fraction_{q}"] = float(np.mean(~alive))
            elif q < Q and f.saturates_outside is not None:
                low, high = f.saturates_outside
                y = twin.y[q]
                figures[f"saturated_fraction_{q}"] = float(np.mean((y < low) | (y > high)))
        return figures

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        figures = self.measure(net)
        for key, value in figures.items():
            history.extra.setdefault(key, []).append(value)
        for layer, message in self._check(net, figures):
            self.warnings.append((epoch, layer, message))
            history.extra.setdefault("warnings", []).append((epoch, layer, message))
            warnings.warn(f"epoch {epoch}: {message}", GradientWarning, stacklevel=2)

    def _check(self, net: Network, figures: dict[str, float]) -> list[tuple[int, str]]:
        """(layer, message) for each layer whose beta vanished or exploded, once per kind."""
        Q = net.Q
        top = figures[f"beta_rms_{Q}"]
        found: list[tuple[int, str]] = []
        if not np.isfinite(top) or top == 0.0:
            return found
        for q in range(1, Q):
            ratio = figures[f"beta_rms_{q}"] / top
            if ratio < self.vanish_ratio:
                kind, verb, bound = "vanish", "vanish", f"< {self.vanish_ratio:g}"
            elif ratio > self.explode_ratio or not np.isfinite(ratio):
                kind, verb, bound = "explode", "explode", f"> {self.explode_ratio:g}"
            else:
                continue
            if (q, kind) in self._warned:
                continue
            self._warned.add((q, kind))
            found.append(
                (
                    q,
                    f"local errors {verb} in layer {q} ({net.activations[q - 1]}): "
                    f"RMS beta^{q} / RMS beta^{Q} = {ratio:.2e} {bound}; remedies: {REMEDIES}",
                )
            )
        return found
