"""The stochastic solvers (sgd, adam, betaprop's optimizers): ``betaprop.fit`` with
scikit-learn's rules (``rules.py``) handed to it as a schedule, callbacks and a penalty."""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from ..training import Callback, DivergenceError, History, InterruptedWarning, TrainingState, fit
from ..training.schedules import Constant, Schedule
from .records import FittedAttributes
from .rules import (
    Adaptive,
    KeepSGDStep,
    L2Penalty,
    NoImprovement,
    SamplesInverseScaling,
    loss_scale,
)
from .warn import convergence_warning

if TYPE_CHECKING:
    from .base import BaseMLP

__all__ = ["fit_stochastic", "SolverDivergenceError", "DivergenceWarning"]

Array = np.ndarray


class SolverDivergenceError(DivergenceError, ValueError):
    """Divergence in an estimator: betaprop's ``DivergenceError`` and, for non-finite values,
    scikit-learn's ``ValueError`` ("Solver produced non-finite parameter weights. ...")."""


class DivergenceWarning(ConvergenceWarning, DivergenceError):
    """Training diverged and stopped, with the weights of the last good epoch: a
    ``ConvergenceWarning`` (scikit-learn's surface: the model is fitted). Turned into an
    error (``warnings.simplefilter("error", ConvergenceWarning)``) it is also betaprop's
    ``DivergenceError``, with the epoch and batch."""

    def __init__(
        self, message: str, epoch: int, batch: int, history: History, loss: float | None = None
    ) -> None:
        DivergenceError.__init__(self, message, epoch, batch, history, loss)


def fit_stochastic(
    model: BaseMLP, X: Any, y: Array, sample_weight: Array | None, incremental: bool
) -> None:
    """The epochs of ``fit`` (``partial_fit``: one), run by ``betaprop.fit``."""
    net = model._net
    if not incremental or "_optimizer" not in model.__dict__:
        model._optimizer = model._make_optimizer()
        model._opt_state = model._optimizer.init(net.params)
    if model.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    if model.early_stopping and getattr(model, "_best_params", None) is None:
        model._best_params = net.params.copy()  # the best weights so far: the start
    X_train, y_train, w_train, validation = _split(model, X, y, sample_weight)
    n = X_train.shape[0]
    if model.batch_size != "auto" and model.batch_size > n:
        warnings.warn(
            "Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
            stacklevel=4,
        )
    if not sp.issparse(X_train):
        X_train = np.asarray(X_train, dtype=net.dtype)
    rule = NoImprovement(model, validation)
    callbacks: list[Callback] = [
        FittedAttributes(model, n, rule),
        rule,
        KeepSGDStep(model._optimizer),
    ]
    callbacks += model._callbacks(1 if incremental else model.max_iter)
    history = model._history = History()
    run = TrainingState(rng=model._random)
    model.n_iter_ = 0
    try:
        fit(
            net,
            X_train,
            model._targets(y_train),
            optimizer=model._optimizer,
            epochs=1 if incremental else model.max_iter,
            batch_size=model._batch_rows(n),
            shuffle=model.shuffle,
            schedule=_schedule(model, rule, n),
            callbacks=callbacks,
            history=history,
            optimizer_state=model._opt_state,
            state=run,
            sample_weight=w_train,
            penalty=L2Penalty(model.alpha, loss_scale(net)),
        )
    except KeyboardInterrupt:  # a second Ctrl-C or a callback's: fit restored the weights
        _end(callbacks, model, history)
        history.interrupted = True
        warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=4)
        stopped = True
    except DivergenceError as error:  # the weights of the last good epoch are back
        _end(callbacks, model, history)
        _diverged(model, error, run, n)
        stopped = True
    else:
        stopped = rule.stopped or incremental or history.interrupted
    # the learning rate training ended with, where scikit-learn's optimizer keeps it
    model._optimizer = _with_rate(model._optimizer, model._opt_state["lr"])
    if not stopped and model.n_iter_ == model.max_iter:
        convergence_warning(
            f"Stochastic Optimizer: Maximum iterations ({model.max_iter:d}) "
            "reached and the optimization hasn't converged yet."
        )
    if model.early_stopping and model._best_params is not None:  # restore the best weights
        net.params[...] = model._best_params


def _with_rate(optimizer: Any, lr: float) -> Any:
    """The optimizer with ``learning_rate`` = the current rate (scikit-learn's
    ``_optimizer.learning_rate`` after fit); the state's rate is what training uses."""
    if dataclasses.is_dataclass(optimizer) and not isinstance(optimizer, type):
        return dataclasses.replace(optimizer, learning_rate=float(lr))
    return optimizer


def _schedule(model: BaseMLP, rule: NoImprovement, n: int) -> Schedule:
    """scikit-learn's learning_rate: constant, invscaling or adaptive (adam: constant)."""
    rate = model.learning_rate if model.solver != "adam" else "constant"
    if rate == "invscaling":
        return SamplesInverseScaling(model.power_t, n, model.t_)
    if rate == "adaptive":
        return Adaptive(rule, float(model._opt_state["lr"]))
    return Constant()


def _end(callbacks: list[Callback], model: BaseMLP, history: History) -> None:
    """What ``fit`` did not get to after an exception: the callbacks' ``on_train_end``."""
    for callback in callbacks:
        callback.on_train_end(model._net, history)


def _split(model: BaseMLP, X: Any, y: Array, sample_weight: Array | None) -> tuple:
    """(X, y, w) to train on and, with ``early_stopping``, the validation set (X, y, w, D)."""
    if not model.early_stopping:
        return X, y, sample_weight, None
    should_stratify = is_classifier(model) and (
        model.n_outputs_ == 1 or model._stratify_for_scoring(y)
    )
    seed = int(model._random.integers(np.iinfo(np.int32).max))
    arrays = [X, y] if sample_weight is None else [X, y, sample_weight]
    parts = train_test_split(
        *arrays,
        random_state=seed,
        test_size=model.validation_fraction,
        stratify=y if should_stratify else None,
    )
    X_train, X_val, y_train, y_val = parts[:4]
    w_train, w_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
    if X_val.shape[0] < 2:
        raise ValueError(
            "The validation set is too small. Increase 'validation_fraction' "
            "or the size of your dataset."
        )
    D_val = model._targets(y_val)
    if is_classifier(model):
        y_val = model._label_binarizer.inverse_transform(y_val)
    return X_train, y_train, w_train, (X_val, y_val, w_val, D_val)


def _diverged(model: BaseMLP, error: DivergenceError, run: TrainingState, n: int) -> None:
    """A diverged epoch, at scikit-learn's surface: the model stays fitted with the weights
    of the last good epoch (of the best one with early stopping), the epoch is counted with
    its loss (and a nan validation score, as scikit-learn records for non-finite
    predictions), and a ``DivergenceWarning`` (a ``ConvergenceWarning``) says what happened.
    A non-finite loss without early stopping raises scikit-learn's ValueError instead (its
    weights are then non-finite and it raises), still after restoring the last good weights.
    """
    error_for_sklearn = _divergence(model, error, run)
    if (error.loss is None or not math.isfinite(error.loss)) and not model.early_stopping:
        # scikit-learn's weights are then non-finite too and it raises its ValueError
        # ("Solver produced non-finite parameter weights"); ours are the last good epoch's
        raise error_for_sklearn from None
    message = str(error_for_sklearn)
    model.n_iter_ += 1
    model.t_ += n
    loss = np.float64(math.nan if error.loss is None else error.loss)
    model.loss_ = loss
    model.loss_curve_.append(loss)
    if model.early_stopping and model.validation_scores_ is not None:
        model.validation_scores_.append(math.nan)
        if model.validation_loss_curve_ is not None:
            model.validation_loss_curve_.append(math.nan)
    if model.verbose and not isinstance(model.verbose, str):
        print(f"Iteration {model.n_iter_:d}, loss = {loss:.8f}")
    warning = DivergenceWarning(
        f"Stochastic Optimizer: {message}", error.epoch, error.batch, error.history, error.loss
    )
    convergence_warning(warning, DivergenceWarning)  # type: ignore[arg-type]


def _divergence(model: BaseMLP, error: DivergenceError, run: TrainingState) -> DivergenceError:
    """The error for a diverged epoch (after the weights of the last good one are back).

    Non-finite values also give scikit-learn's ValueError text, so code written for
    scikit-learn's MLP (``except ValueError``) still catches it.
    """
    if error.loss is None:
        what, finite = "the weights became non-finite", False
    else:
        what = f"the loss became {error.loss!r} (it started at {run.reference:.4g})"
        finite = math.isfinite(error.loss)
    epoch = model.n_iter_ + 1
    sklearn_text = (
        ""
        if finite
        else "Solver produced non-finite parameter weights. The input data may contain "
        "large values and need to be preprocessed. "
    )
    return SolverDivergenceError(
        f"{sklearn_text}training diverged in epoch {epoch}, batch {error.batch}: {what}; the "
        "training stopped with the weights of the last good epoch. Try a smaller learning rate "
        f"(learning_rate_init, now {model._opt_state['lr']:.4g}).",
        epoch,
        error.batch,
        error.history,
    )
