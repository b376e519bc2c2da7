"""scikit-learn's training rules as ordinary objects handed to ``betaprop.fit``.

- ``SamplesInverseScaling``: ``learning_rate="invscaling"``, eta = eta_0 / (t + 1)^power_t
  with t the number of training samples seen (scikit-learn's ``t_``), not epochs.
- ``Adaptive``: ``learning_rate="adaptive"``, eta / 5 whenever ``NoImprovement`` reports a
  stall, until eta <= 1e-6.
- ``NoImprovement``: ``tol`` / ``n_iter_no_change`` on the training loss, or with
  ``early_stopping`` on the validation score (scikit-learn's scorer) of a held-out split.
- ``KeepSGDStep``: scikit-learn's SGD velocity holds steps (eta g), betaprop's gradients (g);
  when eta changes, the velocity is rescaled so the step carried over is scikit-learn's.
- ``L2Penalty``: alpha/(2 S) ||W||^2 on the loss, alpha W / S on the weight gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ..engine.network import Network
from ..training import Callback, History
from ..training.optimizers import SGD, Optimizer
from ..training.schedules import Schedule

if TYPE_CHECKING:
    from .base import BaseMLP

__all__ = ["SamplesInverseScaling", "Adaptive", "NoImprovement", "KeepSGDStep", "L2Penalty"]

Array = np.ndarray
CHUNK = 4096  # rows per forward pass outside training
BLOCK = 1 << 15  # weights per step of the L2 gradient (the scratch stays in the cache)
ADAPTIVE_FLOOR = 1e-6  # 'adaptive' stops dividing (and training stops) at this rate


@dataclass
class SamplesInverseScaling(Schedule):
    """eta = eta_0 / (t + 1)^power_t, t = samples seen: ``samples_before`` + epoch * n."""

    power_t: float = 0.5
    samples_per_epoch: int = 1
    samples_before: int = 0  # scikit-learn's t_ when this call of fit began

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        t = self.samples_before + epoch * self.samples_per_epoch
        return base_lr / (t + 1) ** self.power_t


class NoImprovement(Callback):
    """scikit-learn's ``tol`` / ``n_iter_no_change`` rule; stops training after a stall.

    Each epoch is judged once (``observe``, lazily: the ``Adaptive`` schedule asks first,
    as ``fit`` steps the schedule before the callbacks): the training loss must fall below
    ``best_loss_ - tol``, or with ``validation`` (X, y, w, D) the validation score must
    rise above ``best_validation_score_ + tol``; the model's ``_no_improvement_count``
    counts the epochs that did not. The validation score and loss are recorded in the
    model's ``validation_scores_`` / ``validation_loss_curve_`` and ``history.extra``; the
    best epoch's weights in the model's ``_best_params``.
    """

    def __init__(self, model: BaseMLP, validation: tuple | None = None) -> None:
        self.model, self.validation = model, validation
        self.history = History()
        self.seen = 0
        self.stopped = False
        self.lowered: float | None = None  # the rate Adaptive set after this epoch's stall

    def on_train_begin(self, net: Network, history: History) -> None:
        self.history, self.seen = history, len(history.epoch)

    def stalled(self) -> bool:
        """Has the last epoch made more than n_iter_no_change epochs without improvement?"""
        self.observe()
        return self.model._no_improvement_count > self.model.n_iter_no_change

    def forgive(self) -> None:
        """Start counting again (after ``Adaptive`` lowered the learning rate)."""
        self.model._no_improvement_count = 0

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> bool:
        self.stopped = self.stalled()
        printing = self.model.verbose and not isinstance(self.model.verbose, str)
        if printing and self.stopped:  # scikit-learn's trigger_stopping lines
            adaptive = self.model.learning_rate == "adaptive" and self.model.solver != "adam"
            small = " Learning rate too small." if adaptive else ""
            print(f"{self._message()}{small} Stopping.")
        elif printing and self.lowered is not None:
            print(f"{self._message()} Setting learning rate to {self.lowered:f}")
        self.lowered = None
        return self.stopped

    def observe(self) -> None:
        """Judge the last epoch of the history, once."""
        history, model = self.history, self.model
        if len(history.epoch) == self.seen:
            return
        self.seen = len(history.epoch)
        if self.validation is None:
            loss, best = history.loss[-1], model.best_loss_
            assert best is not None
            improved = not loss > best - model.tol
            if loss < best:
                model.best_loss_ = np.float64(loss)
        else:
            improved = self._observe_validation()
        model._no_improvement_count = 0 if improved else model._no_improvement_count + 1
        if model._no_improvement_count > model.n_iter_no_change:
            history.extra.setdefault("messages", []).append(self._message())

    def _observe_validation(self) -> bool:
        model = self.model
        X_val, y_val, w_val, D_val = self.validation  # type: ignore[misc]
        scores, losses, best = (
            model.validation_scores_,
            model.validation_loss_curve_,
            model.best_validation_score_,
        )
        assert scores is not None and losses is not None and best is not None
        score = model._validation_score(X_val, y_val, w_val)
        loss = mean_loss(model._net, X_val, D_val, w_val)
        scores.append(score)
        losses.append(loss)
        self.history.extra.setdefault("val_score", []).append(score)
        self.history.extra.setdefault("val_loss", []).append(loss)
        improved = not score < best + model.tol
        if score > best:
            model.best_validation_score_ = score
            assert model._best_params is not None  # allocated by an early-stopping fit
            np.copyto(model._best_params, model._net.params)
        return improved

    def _message(self) -> str:
        model = self.model
        what = "Validation score" if self.validation is not None else "Training loss"
        return (
            f"{what} did not improve more than tol={model.tol:f} for "
            f"{model.n_iter_no_change:d} consecutive epochs."
        )


@dataclass
class Adaptive(Schedule):
    """eta stays until ``rule`` reports a stall, then eta / 5 (and the count starts again).

    ``lr`` is the rate training goes on with (the optimizer's current one for
    ``partial_fit``); at or below ``ADAPTIVE_FLOOR`` a stall is left to stop training.
    """

    rule: NoImprovement
    lr: float | None = None

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        lr = base_lr if self.lr is None else self.lr
        if self.rule.stalled() and lr > ADAPTIVE_FLOOR:
            lr /= 5.0
            self.rule.forgive()
            self.rule.lowered = lr
        self.lr = lr
        return lr


class KeepSGDStep(Callback):
    """When a schedule changes eta, rescale SGD's velocity so the step carried over is kept.

    scikit-learn's velocity is v = mu v - eta g (a step), betaprop's v = mu v + g (torch's
    form): with eta constant both give the same steps; after eta_old -> eta_new, v is
    multiplied by eta_old / eta_new.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.applies = isinstance(optimizer, SGD) and optimizer.momentum > 0

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        state = self.training_state.optimizer_state if self.training_state else None
        if not self.applies or state is None or "v" not in state:
            return
        old, new = history.learning_rate[-1], state["lr"]
        if new > 0 and new != old:
            state["v"] *= old / new


class L2Penalty:
    """``penalty(net, loss, weight)`` for ``fit``: scikit-learn's objective on a mini-batch.

    On a mini-batch of total sample weight S, adds alpha W / S to the weight gradient and
    returns ``loss_scale * loss + alpha/(2 S) ||W||^2`` (biases are not decayed).
    ``loss_scale`` is 1/N_Q for the squared error, which scikit-learn reports averaged over
    the outputs (its gradient is the sum's).
    """

    def __init__(self, alpha: float, loss_scale: float = 1.0) -> None:
        self.alpha, self.loss_scale = float(alpha), float(loss_scale)
        self.scratch: Array | None = None

    def value(self, net: Network, weight: float) -> float:
        """alpha/(2 S) ||W||^2."""
        if not self.alpha:
            return 0.0
        W = net.params[: net.n_weights]
        return 0.5 * self.alpha * float(np.einsum("i,i->", W, W)) / weight  # no BLAS threads

    def __call__(self, net: Network, loss: float, weight: float) -> float:
        if self.alpha:  # block by block: a scratch of BLOCK weights, not one the size of W
            W, g = net.params[: net.n_weights], net.grads[: net.n_weights]
            size = min(BLOCK, W.size)
            if self.scratch is None or self.scratch.dtype != W.dtype or len(self.scratch) < size:
                self.scratch = np.empty(size, dtype=W.dtype)
            for start in range(0, W.size, BLOCK):
                w = W[start : start + BLOCK]
                h = self.scratch[: w.size]
                np.multiply(w, self.alpha / weight, out=h)  # written before read
                g[start : start + BLOCK] += h
        return loss * self.loss_scale + self.value(net, weight)


def loss_scale(net: Network) -> float:
    """1/N_Q for the squared error (scikit-learn reports it averaged over outputs), else 1."""
    return 1.0 / net.sizes[-1] if net.loss.name == "squared_error" else 1.0


def input_rows(net: Network, rows: Any) -> Any:
    """Rows of X for step 2: a sparse X as the network's sparse rows (CSR of its dtype,
    never densified: the first layer's products use it), a dense one as an array of the
    network's dtype."""
    if sp.issparse(rows):
        if rows.format == "csr" and rows.dtype == net.dtype:
            return rows
        return net.check_X(rows)
    return np.asarray(rows, dtype=net.dtype)


def mean_loss(net: Network, X: Any, D: Array, w: Array | None, chunk: int = CHUNK) -> float:
    """The (weighted) mean loss on a data set, as ``loss_curve_`` reports it, without L2."""
    total = 0.0
    X = input_rows(net, X) if sp.issparse(X) else X
    for start in range(0, X.shape[0], chunk):
        x = input_rows(net, X[start : start + chunk])
        net.forward_columns(x.T)
        weights = None
        if w is not None:
            weights = np.asarray(w[start : start + chunk], dtype=net.dtype)[None, :]
        total += net.loss_value(D[start : start + chunk].T, weights) * x.shape[0]
    denominator = X.shape[0] if w is None else float(np.sum(w))
    return total / denominator * loss_scale(net)


def beta_sizes(net: Network) -> Array:
    """Per layer q, the root-mean-square per-example local error beta^q of the last pass."""
    sizes = []
    for q in range(1, net.Q + 1):
        b = net.beta[q]
        sizes.append(math.sqrt(float(np.einsum("ij,ij->", b, b)) / b.size) * b.shape[1])
    return np.array(sizes)
