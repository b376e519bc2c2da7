"""The lbfgs solver: scipy's L-BFGS-B on the flat parameter array, each evaluation of the
objective steps 2-5 on the whole set (the network's column interface) plus the L2 term."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.optimize

from ..engine.network import Network
from ..training import History, InterruptedWarning
from ..training.interrupt import InterruptGuard
from .rules import L2Penalty, beta_sizes, input_rows, loss_scale
from .warn import convergence_warning

if TYPE_CHECKING:
    from .base import BaseMLP

__all__ = ["fit_lbfgs"]

Array = np.ndarray


class _Stop(Exception):
    """Raised inside scipy's L-BFGS loop to stop it at a callback's request or on Ctrl-C."""


class _Objective:
    """f(params) and its gradient for scipy: steps 2-5 on all columns, plus L2 (no update).

    Keeps the best point seen, which an interrupted run ends with.
    """

    def __init__(
        self, net: Network, x: Array, d: Array, w: Array | None, weight: float, penalty: L2Penalty
    ) -> None:
        self.net, self.x, self.d, self.w, self.penalty = net, x, d, w, penalty
        self.weight = weight  # the total sample weight S of the L2 term
        self.best_x, self.best_f = net.params.astype(np.float64), math.inf  # a copy
        self.first = True

    def __call__(self, params: Array) -> tuple[float, Array]:
        net = self.net
        net.params[...] = params
        # step 2 (a training pass: batch statistics; dropout masks drawn once, so that
        # L-BFGS minimises one deterministic function)
        net.forward_columns(self.x, training=True, new_masks=self.first)
        self.first = False
        f = net.loss_value(self.d, self.w)
        net.backward(self.d, self.w)  # steps 3-5
        f = self.penalty(net, f, self.weight)
        if f < self.best_f:
            self.best_f = f
            np.copyto(self.best_x, params)
        # the gradient buffer itself where it is float64: scipy copies what L-BFGS-B keeps
        # (a copy here would be one more array of the size of the model at each evaluation)
        return f, net.grads.astype(np.float64, copy=False)


def fit_lbfgs(model: BaseMLP, X: Any, y: Array, sample_weight: Array | None) -> None:
    """Minimise the whole-set objective; each L-BFGS iteration counts as an epoch for the
    callbacks, ``beta_history_`` and ``n_iter_``. Sets ``loss_`` as scikit-learn reports it."""
    net = model._net
    x, d = input_rows(net, X).T, model._targets(y).T  # a sparse X stays sparse
    weights, total = None, float(x.shape[1])
    if sample_weight is not None:  # scaled to mean 1: the weighted mean loss
        total = float(sample_weight.sum())
        weights = (sample_weight * (x.shape[1] / total)).astype(net.dtype)[None, :]
    objective = _Objective(net, x, d, weights, total, L2Penalty(model.alpha))
    callbacks = model._callbacks(model.max_iter)
    history = model._history = History()
    model.beta_history_ = []
    for callback in callbacks:
        callback.on_train_begin(net, history)
    with InterruptGuard() as guard:

        def each_iteration(intermediate_result: Any) -> None:
            model.beta_history_.append(beta_sizes(net))
            _record(history, float(intermediate_result.fun))
            stop = False
            for callback in callbacks:
                stop = bool(callback.on_epoch_end(net, history.epoch[-1], history)) or stop
            if stop or guard.requested:  # a callback, or Ctrl-C after this iteration
                raise _Stop

        try:
            result = scipy.optimize.minimize(
                objective,
                net.params,  # x0: scipy starts from its own float64 copy
                method="L-BFGS-B",
                jac=True,
                callback=each_iteration,
                options={"maxfun": model.max_fun, "maxiter": model.max_iter, "gtol": model.tol},
            )
        except (KeyboardInterrupt, _Stop) as stopped:
            if isinstance(stopped, KeyboardInterrupt) or guard.requested:
                warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=4)
            net.params[...] = objective.best_x
            model.n_iter_ = len(model.beta_history_)
        else:
            model.n_iter_ = _iterations(result, model.max_iter)
            net.params[...] = result.x
        finally:
            for callback in callbacks:
                callback.on_train_end(net, history)
    net.forward_columns(x)  # loss_ as scikit-learn reports it
    scaled = L2Penalty(model.alpha, loss_scale(net))
    model.loss_ = np.float64(
        net.loss_value(d, weights) * scaled.loss_scale + scaled.value(net, objective.weight)
    )


def _record(history: History, loss: float) -> None:
    """One L-BFGS iteration as an epoch of the history (no learning rate, no timing)."""
    history.epoch.append(len(history.epoch) + 1)
    history.loss.append(loss)
    history.learning_rate.append(math.nan)
    history.seconds.append(math.nan)


def _iterations(result: Any, max_iter: int) -> int:
    """scikit-learn's count of lbfgs iterations; a ConvergenceWarning when scipy did not
    converge (the text of scikit-learn's ``_check_optimize_result``)."""
    n_iter = min(result.nit, max_iter)
    if result.status != 0:
        message = (
            f"lbfgs failed to converge after {n_iter} iteration(s) "
            f"(status={result.status}):\n{result.message}\n"
        )
        if n_iter == max_iter:
            message += (
                f"\nIncrease the number of iterations to improve the convergence "
                f"(max_iter={max_iter})."
            )
        message += (
            "\nYou might also want to scale the data as shown in:\n"
            "    https://scikit-learn.org/stable/modules/preprocessing.html"
        )
        convergence_warning(message)
    return n_iter
