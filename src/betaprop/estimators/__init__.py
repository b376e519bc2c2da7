"""Drop-in scikit-learn estimators: ``MLPClassifier`` and ``MLPRegressor`` on betaprop's engine.

Change the import, nothing else: the constructor parameters, their defaults and meaning,
the fitted attributes and the methods are those of scikit-learn 1.9's
``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``. Underneath, a
``betaprop.Network`` does steps 2-5 and ``betaprop.fit`` runs the epochs for sgd, adam and
betaprop's other optimizers (sample weights and the L2 term through its ``sample_weight``
and ``penalty`` arguments); the callback ``_Epochs`` adds scikit-learn's per-epoch logic:
``tol`` / ``n_iter_no_change``, its learning-rate schedules, validation scores,
``partial_fit`` as one epoch.

How scikit-learn's parameters map onto the engine (proven in tests/test_estimators_parity.py,
one epoch equal to scikit-learn's within 1e-10 in float64):

- ``coefs_[i]`` is ``W[i + 1].T`` (scikit-learn's layout is (n_in, n_out)) and
  ``intercepts_[i]`` is ``b[i + 1]`` as a vector; both are views into ``net.params``.
- L2: on a mini-batch of n examples with total sample weight S (S = n without weights), the
  loss gains alpha/(2 S) ||W||^2 and the weight gradient alpha W / S; biases are not decayed.
- ``sgd``: betaprop's SGD (torch's form: v <- mu v + g, p <- p - eta v, Nesterov
  p <- p - eta (g + mu v)) equals scikit-learn's (v <- mu v - eta g, p <- p + v) when eta is
  constant; when a schedule changes eta, the velocity is rescaled by eta_old / eta_new so the
  step carried over is scikit-learn's.
- ``adam``: betaprop's Adam with ``epsilon_hat=True`` (eps added before bias correction).
- The squared error reported in ``loss_`` / ``loss_curve_`` is also averaged over outputs, as
  scikit-learn reports it; gradients are those of the sum over outputs, as scikit-learn's.

Deviations: sparse X is densified one mini-batch (or prediction chunk) at a time, and for
``lbfgs`` once for the whole set; for multi-output squared error ``lbfgs`` minimises the sum
over outputs (scikit-learn's objective value is the mean while its gradient is the sum's).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, check_scoring, get_scorer_names, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import TransformerTags, column_or_1d
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..engine.activations import get_activation
from ..engine.activations import names as activation_names
from ..engine.checks import check_dtype
from ..engine.network import Network
from ..training import (
    Callback,
    DivergenceError,
    History,
    InterruptedWarning,
    TrainingState,
    fit,
)
from ..training.interrupt import InterruptGuard
from ..training.optimizers import OPTIMIZERS, SGD, Adam, AdamW, Optimizer, RMSprop
from ..training.schedules import Schedule

__all__ = ["MLPClassifier", "MLPRegressor"]

Array = np.ndarray
_SKLEARN_SOLVERS = ("lbfgs", "sgd", "adam")
_CHUNK = 4096  # rows per forward pass at prediction time
# Below this many multiply-adds in a layer's product W^q y^{q-1} for one batch, training uses
# one BLAS thread: waking threads costs more than they save on such small products, and on a
# busy machine multithreaded BLAS can be tens of times slower (benchmarks/parity.py).
SINGLE_THREAD_BELOW = 2**25
_controller: Any = None


def _blas_threads_for(sizes: Sequence[int], batch: int) -> Any:
    """One BLAS thread while training if every per-batch product is small, else no change."""
    global _controller
    largest = max(sizes[q] * sizes[q - 1] for q in range(1, len(sizes))) * batch
    if largest >= SINGLE_THREAD_BELOW:
        return contextlib.nullcontext()
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


class _SolverDivergenceError(DivergenceError, ValueError):
    """Divergence in an estimator: betaprop's ``DivergenceError`` and, for non-finite values,
    scikit-learn's ``ValueError`` ("Solver produced non-finite parameter weights. ...")."""


class _Interrupt(Exception):
    """Raised inside scipy's L-BFGS loop to stop it at a callback's request."""


class _ProgressBar(Callback):
    """``verbose=True``: a rich progress bar over the epochs (iterations for lbfgs)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label = total, label
        self.progress: Any = None

    def on_train_begin(self, net: Network, history: History) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn(self.label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("", total=self.total)

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> None:
        text = f"loss {history.loss[-1]:.6g}"
        if history.val_score:
            text += f"  val score {history.val_score[-1]:.4f}"
        self.progress.update(self.task, advance=1, description=text)

    def on_train_end(self, net: Network, history: History) -> None:
        if self.progress is not None:
            self.progress.stop()


class _Unchanged(Schedule):
    """The schedule ``fit`` steps: it keeps the rate that ``_Epochs`` sets (scikit-learn's)."""

    def __init__(self, optimizer_state: dict) -> None:
        self.optimizer_state = optimizer_state

    def step(self, base_lr: float, epoch: int, metric: float | None = None) -> float:
        return float(self.optimizer_state["lr"])


class _Epochs(Callback):
    """scikit-learn's per-epoch logic on ``betaprop.fit``, then the user's callbacks.

    After each epoch: ``n_iter_``, ``t_``, ``loss_curve_``, the validation scores, the
    ``tol`` / ``n_iter_no_change`` test, the invscaling and adaptive learning rates; after
    the first batch of each epoch, ``beta_history_``. The user's callbacks see epochs
    numbered from 1 in each batch (as before) and the history's epoch at the epoch's end.
    """

    def __init__(
        self, model: _BaseMLP, n: int, validation: Any, callbacks: list[Callback], once: bool
    ) -> None:
        self.model, self.n, self.validation, self.callbacks = model, n, validation, callbacks
        self.once = once  # partial_fit: one epoch, never a ConvergenceWarning
        self.schedule = model.learning_rate if model.solver != "adam" else "constant"
        self.base_lr = model._optimizer.learning_rate
        self.stop = self.ended = self.unconverged = False

    def on_train_begin(self, net: Network, history: History) -> None:
        for callback in self.callbacks:
            callback.on_train_begin(net, history)

    def on_batch_end(self, net: Network, epoch: int, batch: int, loss: float) -> bool:
        model = self.model
        if batch == 1:
            model.beta_history_.append(model._beta_sizes())
        for callback in self.callbacks:
            self.stop = (
                bool(callback.on_batch_end(net, model.n_iter_ + 1, batch, loss)) or self.stop
            )
        return False

    def on_epoch_end(self, net: Network, epoch: int, history: History) -> bool:
        model, stop = self.model, self.stop
        model.n_iter_ += 1
        model.loss_ = history.loss[-1]
        model.t_ += self.n
        model.loss_curve_.append(model.loss_)
        model._update_no_improvement_count(bool(model.early_stopping), self.validation)
        if self.validation is not None:
            history.val_loss.append(model.validation_loss_curve_[-1])  # type: ignore[index]
            history.val_score.append(model.validation_scores_[-1])  # type: ignore[index]
        if self.schedule == "invscaling":  # scikit-learn's eta = eta_0 / (t + 1)^power_t
            model._set_learning_rate(self.base_lr / (model.t_ + 1) ** model.power_t)
        if model._no_improvement_count > model.n_iter_no_change:
            if model.early_stopping:
                msg = (
                    "Validation score did not improve more than "
                    f"tol={model.tol:f} for {model.n_iter_no_change:d} consecutive epochs."
                )
            else:
                msg = (
                    f"Training loss did not improve more than tol={model.tol:f}"
                    f" for {model.n_iter_no_change:d} consecutive epochs."
                )
            history.extra.setdefault("messages", []).append(msg)
            if self.schedule != "adaptive" or model._opt_state["lr"] <= 1e-6:
                stop = True
            else:  # 'adaptive': divide the learning rate by 5 and go on
                model._set_learning_rate(model._opt_state["lr"] / 5.0)
                model._no_improvement_count = 0
        for callback in self.callbacks:
            stop = bool(callback.on_epoch_end(net, epoch, history)) or stop
        self.stop = False
        self.unconverged = not (stop or self.once) and model.n_iter_ == model.max_iter
        return stop

    def on_train_end(self, net: Network, history: History) -> None:
        self.ended = True
        for callback in self.callbacks:
            callback.on_train_end(net, history)


class _BaseMLP(BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, training loops, attributes."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(activation_names(hidden_only=True))), "array-like"],
        "solver": [StrOptions(set(_SKLEARN_SOLVERS) | set(OPTIMIZERS)), Optimizer],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "scoring": [None, StrOptions(set(get_scorer_names())), callable],
        "callbacks": [None, list, tuple],
        "dtype": [None, StrOptions({"float32", "float64"}), type, np.dtype],
    }

    # The subclasses define __init__ with scikit-learn's exact signature.
    hidden_layer_sizes: Any
    activation: Any
    solver: Any
    alpha: float
    batch_size: Any
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    loss: str
    shuffle: bool
    random_state: Any
    tol: float
    verbose: Any
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: Any
    max_fun: int
    scoring: Any
    callbacks: Any
    dtype: Any

    def _keep_parameters(self, arguments: dict[str, Any]) -> None:
        """Keep every ``__init__`` argument, unchanged, as the attribute of the same name.

        scikit-learn reads the parameters from each class's explicit ``__init__`` signature
        and requires ``__init__`` to store them and do nothing else.
        """
        for name, value in arguments.items():
            if name != "self":
                setattr(self, name, value)

    # ------------------------------------------------------------ fitted parameters
    @property
    def coefs_(self) -> list[Array]:
        """Weight matrices, ``coefs_[i]`` of shape (n_in, n_out): views ``W[i + 1].T``."""
        net = self._fitted_net()
        return [net.W[q].T for q in range(1, net.Q + 1)]

    @coefs_.setter
    def coefs_(self, coefs: Sequence[Array]) -> None:
        net = self._fitted_net()
        shapes = [net.W[q].T.shape for q in range(1, net.Q + 1)]
        given = [np.shape(c) for c in coefs]
        if given != shapes:
            raise ValueError(f"coefs_ must have the shapes {shapes}, got {given}")
        for q, c in enumerate(coefs, start=1):
            net.W[q][...] = np.asarray(c).T

    @property
    def intercepts_(self) -> list[Array]:
        """Bias vectors, ``intercepts_[i]`` of shape (n_out,): views of ``b[i + 1]``."""
        net = self._fitted_net()
        return [net.b[q][:, 0] for q in range(1, net.Q + 1)]

    @intercepts_.setter
    def intercepts_(self, intercepts: Sequence[Array]) -> None:
        net = self._fitted_net()
        shapes = [(net.sizes[q],) for q in range(1, net.Q + 1)]
        given = [np.shape(b) for b in intercepts]
        if given != shapes:
            raise ValueError(f"intercepts_ must have the shapes {shapes}, got {given}")
        for q, b in enumerate(intercepts, start=1):
            net.b[q][:, 0] = b

    def _fitted_net(self) -> Network:
        net = self.__dict__.get("_net")
        if net is None:
            raise AttributeError(f"this {type(self).__name__} is not fitted yet")
        return net

    def to_network(self) -> Network:
        """The trained ``betaprop.Network`` (a copy: later fits do not change it)."""
        check_is_fitted(self)
        return self._net.copy()

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())  # a copy: never change the live object
        net = state.pop("_net", None)
        if net is not None:  # a Network holds functions and work buffers: keep its recipe
            state["_net_recipe"] = (
                net.sizes,
                net.activations[:-1],
                net.activations[-1],
                net.loss.name,
                net.dtype,
                net.params.copy(),
            )
        return state

    def __setstate__(self, state: dict) -> None:
        recipe = state.pop("_net_recipe", None)
        super().__setstate__(state)
        if recipe is not None:
            sizes, hidden, output, loss, dtype, params = recipe
            self._net = Network(sizes, hidden, output, loss, dtype, seed=0)
            self._net.params[...] = params

    # ------------------------------------------------------------ set-up
    def _hidden_activations(self, n_hidden: int) -> list[str]:
        if isinstance(self.activation, str):
            return [self.activation] * n_hidden
        names = list(self.activation)
        if len(names) != n_hidden:
            raise ValueError(
                f"activation must be one name or a list of one name per hidden layer "
                f"({n_hidden}), got {self.activation!r}"
            )
        hidden = activation_names(hidden_only=True)
        for name in names:
            if not isinstance(name, str) or name not in hidden:
                raise ValueError(f"activation must be one of {hidden}, got {name!r}")
        return names

    def _rng(self) -> np.random.Generator:
        """A generator for this fit: default_rng(random_state); a RandomState gives a seed."""
        state = self.random_state
        if isinstance(state, np.random.RandomState):
            return np.random.default_rng(int(state.randint(np.iinfo(np.int32).max)))
        return np.random.default_rng(state)

    def _initialize(self, y: Array, layer_units: list[int], dtype: str) -> None:
        """Step 1 as scikit-learn does it, and the bookkeeping of a first fit."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
            loss = self.loss
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_, loss = "softmax", "cross_entropy"
        else:
            self.out_activation_, loss = "logistic", "binary_cross_entropy"
        hidden = self._hidden_activations(len(layer_units) - 2)
        net = Network(layer_units, hidden, loss=loss, dtype=dtype, seed=0)
        # Step 1 (scikit-learn's): W and b ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)),
        # with 2 instead of 6 after logistic units (Glorot & Bengio, 2010).
        for q in range(1, net.Q + 1):
            before = hidden[min(q, net.Q - 1) - 1] if hidden else None
            factor = 2.0 if before is not None and get_activation(before).name == "sigmoid" else 6.0
            a = math.sqrt(factor / (layer_units[q - 1] + layer_units[q]))
            net.W[q][...] = self._random.uniform(-a, a, net.W[q].shape)
            net.b[q][...] = self._random.uniform(-a, a, net.b[q].shape)
        self._net = net
        self._best_params = net.params.copy()
        self._history = History()
        if self._stochastic():
            self.loss_curve_: list[float] = []
            self._no_improvement_count = 0
            self.beta_history_: list[Array] = []
            if self.early_stopping:
                self.validation_scores_: list[float] | None = []
                self.validation_loss_curve_: list[float] | None = []
                self.best_validation_score_: float | None = -np.inf
                self.best_loss_: float | None = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.validation_loss_curve_ = None
                self.best_validation_score_ = None

    def _stochastic(self) -> bool:
        return not (isinstance(self.solver, str) and self.solver == "lbfgs")

    def _make_optimizer(self) -> Optimizer:
        solver, lr = self.solver, self.learning_rate_init
        if isinstance(solver, Optimizer):
            return solver
        if solver == "sgd":
            nesterov = self.nesterovs_momentum and self.momentum > 0
            return SGD(learning_rate=lr, momentum=self.momentum, nesterov=nesterov)
        if solver == "adam":
            return Adam(
                learning_rate=lr,
                beta_1=self.beta_1,
                beta_2=self.beta_2,
                epsilon=self.epsilon,
                epsilon_hat=True,
            )
        if solver == "adamw":
            return AdamW(
                learning_rate=lr, beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
            )
        if solver == "rmsprop":
            return RMSprop(learning_rate=lr, epsilon=self.epsilon)
        return OPTIMIZERS[solver](learning_rate=lr)

    # ------------------------------------------------------------ fit
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        first_pass = "_net" not in self.__dict__ or (not self.warm_start and not incremental)

        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(X, y, sample_weight, incremental)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if not is_classifier(self) and self.loss == "poisson" and np.any(y < 0):
            raise ValueError(f"y must be >= 0 for loss='poisson', got min(y) = {y.min()!r}")
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1], *hidden_layer_sizes, self.n_outputs_]
        self._random = self._rng()

        if first_pass:
            dtype = X.dtype.name if self.dtype is None else check_dtype(self.dtype)
            self._initialize(y, layer_units, dtype)
        elif list(self._net.sizes) != layer_units:
            raise ValueError(
                f"hidden_layer_sizes and the data must match the fitted network's layer sizes "
                f"{list(self._net.sizes)} to continue training, got {layer_units}"
            )
        batch = self._batch_rows(X.shape[0]) if self._stochastic() else X.shape[0]
        with _blas_threads_for(layer_units, batch):
            if self._stochastic():
                self._fit_stochastic(X, y, sample_weight, incremental)
            else:
                self._fit_lbfgs(X, y, sample_weight)
        if not np.isfinite(self._net.params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _sample_weight(self, X: Any, y: Array, sample_weight: Any, incremental: bool) -> Any:
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        return sample_weight

    def _targets(self, y: Array) -> Array:
        """Targets D (n, N_Q) in the network's dtype (one-hot rows for classes)."""
        return np.ascontiguousarray(y, dtype=self._net.dtype)

    def _callbacks(self, total: int) -> list[Callback]:
        callbacks = list(self.callbacks or ())
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be betaprop.Callback instances, got {callback!r}")
        if self.verbose:
            callbacks.append(_ProgressBar(total, type(self).__name__))
        return callbacks

    def _penalty(self, sw_sum: float) -> float:
        """L2 term alpha/(2 S) ||W||^2 of the loss; adds alpha W / S to the weight gradient."""
        if not self.alpha:
            return 0.0
        net, nw = self._net, self._net.n_weights
        W = net.params[:nw]
        np.multiply(W, self.alpha / sw_sum, out=self._scratch)
        net.grads[:nw] += self._scratch
        return 0.5 * self.alpha * float(np.einsum("i,i->", W, W)) / sw_sum  # no BLAS threads

    def _beta_sizes(self) -> Array:
        """Per layer q, the root-mean-square per-example local error beta^q of the last pass."""
        beta = self._net.beta
        sizes = []
        for q in range(1, self._net.Q + 1):
            b = beta[q]
            sizes.append(math.sqrt(float(np.einsum("ij,ij->", b, b)) / b.size) * b.shape[1])
        return np.array(sizes)

    def _batch_rows(self, n: int) -> int:
        """Rows per mini-batch for n examples: scikit-learn's "auto" (200), else batch_size,
        at most n."""
        return min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))

    def _fit_stochastic(
        self, X: Any, y: Array, sample_weight: Array | None, incremental: bool
    ) -> None:
        """The epochs, run by ``betaprop.fit``; scikit-learn's per-epoch logic is ``_Epochs``."""
        net = self._net
        if not incremental or "_optimizer" not in self.__dict__:
            self._optimizer = self._make_optimizer()
            self._opt_state = self._optimizer.init(net.params)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        validation = None
        X_train, y_train, w_train = X, y, sample_weight
        if self.early_stopping:
            should_stratify = is_classifier(self) and (
                self.n_outputs_ == 1 or self._stratify_for_scoring(y)
            )
            stratify = y if should_stratify else None
            seed = int(self._random.integers(np.iinfo(np.int32).max))
            arrays = [X, y] if sample_weight is None else [X, y, sample_weight]
            parts = train_test_split(
                *arrays, random_state=seed, test_size=self.validation_fraction, stratify=stratify
            )
            X_train, X_val, y_train, y_val = parts[:4]
            w_train, w_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            D_val = self._targets(y_val)
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
            validation = (X_val, y_val, w_val, D_val)

        n = X_train.shape[0]
        if self.batch_size != "auto" and self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than "
                "sample size. It is going to be clipped",
                stacklevel=4,
            )
        batch_size = self._batch_rows(n)
        X_train = X_train if sp.issparse(X_train) else self._as_net_dtype(X_train)
        self._scratch = np.empty(net.n_weights, dtype=net.dtype)
        self._loss_scale = 1.0 / self.n_outputs_ if net.loss.name == "squared_error" else 1.0
        callbacks = self._callbacks(1 if incremental else self.max_iter)
        epochs = _Epochs(self, n, validation, callbacks, once=incremental)
        history = self.__dict__.setdefault("_history", History())
        run = TrainingState(rng=self._random)
        self.n_iter_ = 0
        try:
            fit(
                net,
                X_train,
                self._targets(y_train),
                optimizer=self._optimizer,
                epochs=1 if incremental else self.max_iter,
                batch_size=batch_size,
                shuffle=self.shuffle,
                schedule=_Unchanged(self._opt_state),
                callbacks=[epochs],
                history=history,
                optimizer_state=self._opt_state,
                state=run,
                sample_weight=w_train,
                penalty=lambda net, loss, weight: loss * self._loss_scale + self._penalty(weight),
            )
        except KeyboardInterrupt:  # a second Ctrl-C or a callback's: fit restored the weights
            history.interrupted = True
            warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=4)
        except DivergenceError as error:  # the weights of the last good epoch are back
            if error.loss is None:
                what, finite = "the weights became non-finite", False
            else:
                what = f"the loss became {error.loss!r} (it started at {run.reference:.4g})"
                finite = math.isfinite(error.loss)
            raise self._divergence(what, error.batch, history, finite) from None
        finally:
            if not epochs.ended:
                epochs.on_train_end(net, history)
        if epochs.unconverged and not history.interrupted:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter:d}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.early_stopping:  # restore the best weights
            net.params[...] = self._best_params

    def _divergence(
        self, what: str, batch: int, history: History, finite: bool = False
    ) -> DivergenceError:
        """The error for a diverged epoch (after the weights of the last good one are back).

        Non-finite values also give scikit-learn's ValueError text, so code written for
        scikit-learn's MLP (``except ValueError``) still catches it.
        """
        epoch = self.n_iter_ + 1
        sklearn_text = (
            ""
            if finite
            else "Solver produced non-finite parameter weights. The input data may contain "
            "large values and need to be preprocessed. "
        )
        return _SolverDivergenceError(
            f"{sklearn_text}training diverged in epoch {epoch}, batch {batch}: {what}; the "
            "weights of the last good epoch were restored. Try a smaller learning rate "
            f"(learning_rate_init, now {self._opt_state['lr']:.4g}).",
            epoch,
            batch,
            history,
        )

    def _set_learning_rate(self, lr: float) -> None:
        state = self._opt_state
        if isinstance(self._optimizer, SGD) and "v" in state and lr > 0:
            # scikit-learn's velocity holds steps (eta g), torch's form gradients (g):
            # rescale so the step carried over is the same.
            state["v"] *= state["lr"] / lr
        state["lr"] = lr

    def _update_no_improvement_count(self, early_stopping: bool, validation: Any) -> None:
        if early_stopping:
            X_val, y_val, w_val, D_val = validation
            val_score = self._validation_score(X_val, y_val, w_val)
            self.validation_scores_.append(val_score)  # type: ignore[union-attr]
            self.validation_loss_curve_.append(  # type: ignore[union-attr]
                self._mean_loss(X_val, D_val, w_val)
            )
            last_valid_score = self.validation_scores_[-1]  # type: ignore[index]
            if last_valid_score < (self.best_validation_score_ + self.tol):  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:  # type: ignore[operator]
                self.best_validation_score_ = last_valid_score
                np.copyto(self._best_params, self._net.params)
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:  # type: ignore[operator]
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:  # type: ignore[operator]
                self.best_loss_ = self.loss_curve_[-1]

    def _stratify_for_scoring(self, y: Array) -> bool:
        """Stratify the early-stopping split of a multiclass target when ``scoring`` is set.

        scikit-learn stratifies only binary targets; a random 10 % of a multiclass target can
        miss a class, which breaks probability scorers such as neg_log_loss. Stratified only
        where it can be: one-hot rows (not multi-label) and at least 2 examples per class.
        """
        if self.scoring is None or getattr(self._label_binarizer, "y_type_", "") != "multiclass":
            return False
        return bool(np.asarray(y).sum(axis=0).min() >= 2)

    def _validation_score(self, X: Any, y: Any, sample_weight: Any) -> float:
        if self.scoring is None:
            return self._score(X, y, sample_weight=sample_weight)
        scorer = check_scoring(self, scoring=self.scoring)
        if sample_weight is None:
            return float(scorer(self, X, y))
        return float(scorer(self, X, y, sample_weight=sample_weight))

    def _mean_loss(self, X: Any, D: Array, w: Array | None) -> float:
        """The (weighted) mean loss on a data set, as ``loss_curve_`` reports it, without L2."""
        net, total = self._net, 0.0
        for start in range(0, X.shape[0], _CHUNK):
            x = self._dense_rows(X[start : start + _CHUNK])
            net.forward_columns(x.T)
            weights = None
            if w is not None:
                weights = np.asarray(w[start : start + _CHUNK], dtype=net.dtype)[None, :]
            total += net.loss_value(D[start : start + _CHUNK].T, weights) * x.shape[0]
        denominator = X.shape[0] if w is None else float(np.sum(w))
        return total / denominator * self._loss_scale

    def _fit_lbfgs(self, X: Any, y: Array, sample_weight: Array | None) -> None:
        """L-BFGS-B (scipy) on the flat parameter array; each evaluation is steps 2-5 on all X."""
        net = self._net
        X = self._dense_rows(X) if sp.issparse(X) else self._as_net_dtype(X)
        x_cols, d_cols = X.T, self._targets(y).T
        n = X.shape[0]
        weights, sw_sum = None, float(n)
        if sample_weight is not None:
            sw_sum = float(sample_weight.sum())
            weights = (sample_weight * (n / sw_sum)).astype(net.dtype)[None, :]
        self._scratch = np.empty(net.n_weights, dtype=net.dtype)
        self._loss_scale = 1.0
        best_x, best_f = net.params.astype(np.float64), [math.inf]
        callbacks = self._callbacks(self.max_iter)
        history = self.__dict__.setdefault("_history", History())
        self.beta_history_ = []

        def objective(params: Array) -> tuple[float, Array]:
            net.params[...] = params
            net.forward_columns(x_cols)
            f = net.loss_value(d_cols, weights)
            net.backward(d_cols, weights)
            f += self._penalty(sw_sum)
            if f < best_f[0]:  # the best point seen, kept for an interrupted run
                best_f[0] = f
                np.copyto(best_x, params)
            return f, net.grads.astype(np.float64)

        def each_iteration(intermediate_result: Any) -> None:
            self.beta_history_.append(self._beta_sizes())
            history.epoch.append(len(history.epoch) + 1)
            history.loss.append(float(intermediate_result.fun))
            history.learning_rate.append(math.nan)
            history.seconds.append(math.nan)
            stop = False
            for callback in callbacks:
                stop = bool(callback.on_epoch_end(net, history.epoch[-1], history)) or stop
            if stop or guard.requested:  # a callback, or Ctrl-C after this iteration
                raise _Interrupt

        for callback in callbacks:
            callback.on_train_begin(net, history)
        guard = InterruptGuard()
        try:
            guard.__enter__()
            result = scipy.optimize.minimize(
                objective,
                net.params.astype(np.float64),
                method="L-BFGS-B",
                jac=True,
                callback=each_iteration,
                options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol},
            )
        except (KeyboardInterrupt, _Interrupt) as stopped:
            if isinstance(stopped, KeyboardInterrupt) or guard.requested:
                warnings.warn("Training interrupted by user.", InterruptedWarning, stacklevel=4)
            net.params[...] = best_x
            self.n_iter_ = len(self.beta_history_)
        else:
            self.n_iter_ = _check_optimize_result("lbfgs", result, self.max_iter)
            net.params[...] = result.x
        finally:
            guard.__exit__(None, None, None)
            for callback in callbacks:
                callback.on_train_end(net, history)
        # loss_ as scikit-learn reports it (squared error also averaged over the outputs)
        self._loss_scale = 1.0 / self.n_outputs_ if net.loss.name == "squared_error" else 1.0
        net.forward_columns(x_cols)
        data = net.loss_value(d_cols, weights) * self._loss_scale
        self.loss_ = data + self._penalty(sw_sum)

    # ------------------------------------------------------------ prediction
    def _as_net_dtype(self, X: Array) -> Array:
        return np.asarray(X, dtype=self._net.dtype)

    def _dense_rows(self, X: Any) -> Array:
        if sp.issparse(X):
            X = X.toarray()
        return np.asarray(X, dtype=self._net.dtype)

    def _layer_output(self, X: Any, layer: int) -> Array:
        """Step 2 on X (validated), chunk by chunk: y^layer as an (n, N_layer) array."""
        net = self._net
        out = np.empty((X.shape[0], net.sizes[layer]), dtype=net.dtype)
        for start in range(0, X.shape[0], _CHUNK):
            x = self._dense_rows(X[start : start + _CHUNK])
            net.forward_columns(x.T)
            out[start : start + x.shape[0]] = net.workspace(x.shape[0]).y[layer].T
        return out

    def _forward_pass_fast(self, X: Any, check_input: bool = True) -> Array:
        if check_input:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        return self._layer_output(X, self._net.Q)

    def transform(self, X: Any, layer: int | None = None) -> Array:
        """The representation y^q of X at layer q (step 2), shape (n_samples, N_q).

        ``layer`` counts as the seed does: 0 is the input, Q the output; by default the last
        hidden layer, Q - 1.
        """
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
        Q = self._net.Q
        if layer is None:
            layer = Q - 1 if Q > 1 else Q
        if isinstance(layer, bool) or not isinstance(layer, Integral) or not 0 <= layer <= Q:
            raise ValueError(f"layer must be an integer in [0, Q] = [0, {Q}], got {layer!r}")
        if layer == 0:
            return self._dense_rows(X)
        return self._layer_output(X, int(layer))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Array:
        """Fit, then return ``transform(X)``: the last hidden layer's y^{Q-1}."""
        return self.fit(X, y, **fit_params).transform(X)

    def _score_with_function(
        self, X: Any, y: Any, sample_weight: Any, score_function: Any
    ) -> float:
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def _check_solver(self) -> bool:
        if not self._stochastic():
            raise AttributeError(
                "partial_fit is only available for stochastic"
                f" optimizers. {self.solver} is not stochastic."
            )
        return True

    def _predict(self, X: Any, check_input: bool = True) -> Array:
        raise NotImplementedError

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        raise NotImplementedError

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple:
        raise NotImplementedError

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : ndarray or sparse matrix of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : a trained model.
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        return tags


_DOC_EXTRA = """
    Beyond scikit-learn (all off by default):

    - ``activation`` may be a list (one name per hidden layer) and any name of betaprop's
      registry (leaky_relu, elu, softplus, gelu, ...).
    - ``solver`` also accepts betaprop's optimizers by name ("adamw", "rmsprop") or as an
      instance (``betaprop.optimizers.RMSprop(0.01, centered=True)``); ``learning_rate``
      schedules apply to every stochastic solver but "adam" (as in scikit-learn).
    - ``scoring``: a scikit-learn scorer (name or callable) for ``early_stopping``;
      ``validation_scores_`` then holds its values.
    - ``callbacks``: betaprop ``Callback`` objects (epoch = iteration for lbfgs; returning True
      stops); ``verbose=True`` shows a progress bar (nothing is printed otherwise).
    - ``dtype``: "float32" or "float64" to train in that dtype whatever the input's (by
      default float32 input trains in float32, anything else in float64).
    - ``validation_loss_curve_``: the validation loss per epoch (same scale as
      ``loss_curve_``, without the L2 term) when ``early_stopping=True``.
    - ``beta_history_``: per epoch, an array of Q sizes, the root-mean-square per-example
      local error beta^q of layer q = 1..Q on the epoch's first mini-batch (for lbfgs, per
      iteration on the whole set): the seed's "beta is large at the output, fades in deep
      layers".
    - ``transform(X, layer=q)``: the hidden representation y^q; ``to_network()``: the
      trained ``betaprop.Network``.
    - Ctrl-C during ``fit`` warns "Training interrupted by user." and keeps a usable model
      (the best weights so far when ``early_stopping=True``; for lbfgs the best point seen).
"""


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier, scikit-learn's ``MLPClassifier`` on betaprop.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPClassifier`` (scikit-learn 1.9): softmax + cross-entropy
    for multiclass targets, sigmoid + binary cross-entropy for binary and multi-label ones.

    Extra parameters: ``class_weight`` (dict, "balanced" or None, as in scikit-learn's
    linear models; multiplies ``sample_weight``), ``scoring``, ``callbacks``, ``dtype``.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [None, dict, StrOptions({"balanced"})],
    }

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: Any = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        class_weight: Any = None,
        scoring: Any = None,
        callbacks: Any = None,
        dtype: Any = None,
    ) -> None:
        self._keep_parameters(locals())

    loss = "log_loss"

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        self._y_labels = y
        if (not hasattr(self, "classes_")) or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same "
                        "classes as in the previous call to fit. Previously "
                        f"got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    "`y` has classes not in `self.classes_`. "
                    f"`self.classes_` has {self.classes_}. 'y' has {classes}."
                )
        y = self._label_binarizer.transform(y).astype(bool)
        return X, y

    def _sample_weight(self, X: Any, y: Array, sample_weight: Any, incremental: bool) -> Any:
        sample_weight = super()._sample_weight(X, y, sample_weight, incremental)
        labels = self.__dict__.pop("_y_labels", None)
        if self.class_weight is None:
            return sample_weight
        if incremental and isinstance(self.class_weight, str):
            raise ValueError(
                "class_weight must be a dict or None for partial_fit, got 'balanced' "
                "(the class frequencies of one batch are not those of the data)"
            )
        weights = compute_sample_weight(self.class_weight, labels)
        return weights if sample_weight is None else weights * sample_weight

    def predict(self, X: Any) -> Any:
        """Predict using the multi-layer perceptron classifier.

        Returns the predicted classes, shape (n_samples,) or (n_samples, n_classes) for
        multi-label targets.
        """
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> Any:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        return self._label_binarizer.inverse_transform(y_pred)

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(
            X, y, sample_weight=sample_weight, score_function=accuracy_score
        )

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> Any:
        """Update the model with a single iteration (one epoch) over the given data.

        ``classes`` (all the classes of every call) is required on the first call.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def predict_log_proba(self, X: Any) -> Array:
        """The log of the probability estimates, ``log(predict_proba(X))``."""
        y_prob = self.predict_proba(X)
        return np.log(y_prob, out=y_prob)

    def predict_proba(self, X: Any) -> Array:
        """Probability estimates, shape (n_samples, n_classes), classes as in ``classes_``."""
        check_is_fitted(self)
        y_pred = self._forward_pass_fast(X)
        if self.n_outputs_ == 1:
            y_pred = y_pred.ravel()
        if y_pred.ndim == 1:
            return np.vstack([1 - y_pred, y_pred]).T
        return y_pred

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor, scikit-learn's ``MLPRegressor`` on betaprop.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPRegressor`` (scikit-learn 1.9): identity output with the
    (half) squared error, or exp output with the half Poisson deviance (``loss="poisson"``,
    y >= 0).

    Extra parameters: ``scoring``, ``callbacks``, ``dtype``.
    """

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: Any = "relu",
        *,
        solver: Any = "adam",
        alpha: float = 0.0001,
        batch_size: Any = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: Any = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: Any = 10,
        max_fun: int = 15000,
        scoring: Any = None,
        callbacks: Any = None,
        dtype: Any = None,
    ) -> None:
        self._keep_parameters(locals())

    def predict(self, X: Any) -> Array:
        """Predict using the multi-layer perceptron: (n_samples,) or (n_samples, n_outputs)."""
        check_is_fitted(self)
        return self._predict(X)

    def _predict(self, X: Any, check_input: bool = True) -> Array:
        y_pred = self._forward_pass_fast(X, check_input=check_input)
        if y_pred.shape[1] == 1:
            return y_pred.ravel()
        return y_pred

    def _score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        return self._score_with_function(X, y, sample_weight=sample_weight, score_function=r2_score)

    def _validate_input(self, X: Any, y: Any, incremental: bool, reset: bool) -> tuple:
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y

    @available_if(lambda est: est._check_solver())
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        """Update the model with a single iteration (one epoch) over the given data."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


for _cls in (MLPClassifier, MLPRegressor):
    _cls.__doc__ = (_cls.__doc__ or "") + _DOC_EXTRA
