"""What MLPClassifier and MLPRegressor share: parameters, fitted attributes, ``fit``,
prediction. The training itself is in ``stochastic.py`` (sgd, adam, ...) and ``lbfgs.py``;
scikit-learn's rules in ``rules.py``.

Private scikit-learn imports kept, for want of public equivalents: ``sklearn.base.
_fit_context`` (validates the parameters against ``_parameter_constraints`` as scikit-learn's
estimators do) and ``sklearn.utils.validation._check_sample_weight`` (scikit-learn's checks
of sample weights, with the messages its estimator checks expect).
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import (
    BaseEstimator,
    TransformerMixin,
    _fit_context,
    is_classifier,
)
from sklearn.metrics import check_scoring
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..engine.activations import get_activation
from ..engine.checks import check_dtype
from ..engine.network import Network
from ..training import Callback, History
from ..training.optimizers import Optimizer
from .display import Displayed
from .layers import FittedLayers
from .lbfgs import fit_lbfgs
from .params import PARAMETER_CONSTRAINTS, hidden_activations, make_optimizer
from .records import ProgressBar
from .rules import CHUNK, input_rows, mean_loss
from .stochastic import fit_stochastic
from .threads import blas_threads_for
from .warn import warn_if_under_mpi

__all__ = ["BaseMLP"]

Array = np.ndarray


class BaseMLP(FittedLayers, Displayed, TransformerMixin, BaseEstimator):
    """What MLPClassifier and MLPRegressor share: parameters, training, attributes."""

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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

    # Fitted state besides scikit-learn's attributes
    _net: Network
    _best_params: Array | None  # early stopping's best weights (None until it runs)
    _optimizer: Optimizer
    _opt_state: dict
    _random: np.random.Generator
    _history: History
    _no_improvement_count: int
    _label_binarizer: Any

    # ------------------------------------------------------------ pickling
    def __getstate__(self) -> dict:
        self._apply_assigned_layers()  # an item assigned into coefs_ / intercepts_ is kept
        state = dict(super().__getstate__())  # a copy: never change the live object
        state.pop("_layer_lists", None)  # views into the network: rebuilt on demand
        net = state.pop("_net", None)
        if net is not None:  # a Network holds functions and work buffers: keep its spec
            state["_net_spec"], state["_net_params"] = net.spec(), net.params.copy()
            state["_net_stats"] = net.stats.copy()
            state["_net_dropout"] = net.dropout_rng.bit_generator.state
        return state

    def __setstate__(self, state: dict) -> None:
        spec, params = state.pop("_net_spec", None), state.pop("_net_params", None)
        stats, dropout = state.pop("_net_stats", None), state.pop("_net_dropout", None)
        super().__setstate__(state)
        if spec is not None:
            self._net = Network.from_spec(spec)
            self._net.params[...] = params
            if stats is not None:
                self._net.stats[...] = stats
            if dropout is not None:
                self._net.dropout_rng.bit_generator.state = dropout

    # ------------------------------------------------------------ set-up
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
        hidden = hidden_activations(self.activation, len(layer_units) - 2)
        extras = self._net_extras()
        seed = 0
        if self.init is not None or self.dropout:  # the engine's rule, the dropout masks
            seed = int(self._random.integers(np.iinfo(np.int32).max))
        net = Network(layer_units, hidden, loss=loss, dtype=dtype, seed=seed, **extras)
        if self.init is None:
            self._sklearn_init(net, hidden, layer_units)
        self._net = net
        self._best_params = None  # a copy of the weights only where early stopping needs it
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

    def _net_extras(self) -> dict[str, Any]:
        """batch_norm, layer_norm, dropout, init, residual as the Network's normalization,
        dropout, init, residual."""
        if self.batch_norm and self.layer_norm:
            raise ValueError("batch_norm and layer_norm must not both be True, got both")
        return {
            "normalization": "batch" if self.batch_norm else "layer" if self.layer_norm else None,
            "dropout": self.dropout,
            "init": self.init,
            "residual": self.residual,
        }

    def _sklearn_init(self, net: Network, hidden: list[str], layer_units: list[int]) -> None:
        """Step 1 as scikit-learn does it, with its generator: W and b ~ U(-a, a),
        a = sqrt(6 / (fan_in + fan_out)), 2 instead of 6 after logistic units (Glorot &
        Bengio, 2010); drawn in scikit-learn's order and (fan_in, fan_out) layout, so the
        same random_state starts from the same weights as scikit-learn's."""
        random_state = check_random_state(self.random_state)
        for q in range(1, net.Q + 1):
            before = hidden[min(q, net.Q - 1) - 1] if hidden else None
            factor = 2.0 if before is not None and get_activation(before).name == "sigmoid" else 6.0
            a = math.sqrt(factor / (layer_units[q - 1] + layer_units[q]))
            net.W[q][...] = random_state.uniform(-a, a, (layer_units[q - 1], layer_units[q])).T
            net.b[q][:, 0] = random_state.uniform(-a, a, layer_units[q])

    def _adopt_given_layers(self, y: Array, layer_units: list[int], dtype: str) -> None:
        """``coefs_`` / ``intercepts_`` assigned before any fit: a network starting there."""
        coefs = self.__dict__.pop("_given_coefs")
        intercepts = self.__dict__.pop("_given_intercepts", None)
        kept: dict[str, Any] = {
            k: self.__dict__[k] for k in ("t_", "n_iter_", "loss_curve_") if k in self.__dict__
        }
        self._initialize(y, layer_units, dtype)
        self.__dict__.update(kept)
        self.coefs_ = coefs
        if intercepts is not None:
            self.intercepts_ = intercepts

    def _stochastic(self) -> bool:
        return not (isinstance(self.solver, str) and self.solver == "lbfgs")

    def _make_optimizer(self) -> Optimizer:
        return make_optimizer(self)

    # ------------------------------------------------------------ fit
    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> Any:
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {hidden_layer_sizes}.")
        continuing = self.warm_start or incremental
        first_pass = not continuing or (
            "_net" not in self.__dict__ and "_given_coefs" not in self.__dict__
        )

        warn_if_under_mpi(type(self).__name__)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(X, y, sample_weight, incremental)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        if not is_classifier(self) and self.loss == "poisson" and np.any(y < 0):
            raise ValueError(f"y must be >= 0 for loss='poisson', got min(y) = {y.min()!r}")
        if self.batch_norm and X.shape[0] < 2:
            raise ValueError(
                f"batch_norm=True needs at least 2 samples, got n_samples = {X.shape[0]}"
            )
        self.n_outputs_ = y.shape[1]
        layer_units = [X.shape[1], *hidden_layer_sizes, self.n_outputs_]
        self._random = self._rng()

        if self.dtype is not None:
            dtype = check_dtype(self.dtype)
        elif self._stochastic():
            dtype = X.dtype.name  # float32 stays float32, as in scikit-learn
        else:  # scikit-learn's lbfgs unpacks scipy's float64 solution into its weights
            dtype = "float64"
        if not first_pass:
            self._apply_assigned_layers()  # continuing from items assigned into coefs_ etc.
        if first_pass:
            self.__dict__.pop("_given_coefs", None)
            self.__dict__.pop("_given_intercepts", None)
            self._initialize(y, layer_units, dtype)
        elif "_net" not in self.__dict__:
            self._adopt_given_layers(y, layer_units, dtype)
        elif list(self._net.sizes) != layer_units:
            raise ValueError(
                f"hidden_layer_sizes and the data must match the fitted network's layer sizes "
                f"{list(self._net.sizes)} to continue training, got {layer_units}"
            )
        batch = self._batch_rows(X.shape[0]) if self._stochastic() else X.shape[0]
        with blas_threads_for(layer_units, batch):
            if self._stochastic():
                fit_stochastic(self, X, y, sample_weight, incremental)
            else:
                fit_lbfgs(self, X, y, sample_weight)
        if not np.isfinite(self._net.params).all():
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _sample_weight(self, X: Any, y: Array, sample_weight: Any, incremental: bool) -> Any:
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
            # scikit-learn divides by the sum of the weights: all <= 0 (sum < 0) trains as
            # the weights' negatives would (w_i / sum w is the same).
            if sample_weight.sum() < 0 and (sample_weight <= 0).all():
                sample_weight = -sample_weight
        return sample_weight

    def _targets(self, y: Array) -> Array:
        """Targets D (n, N_Q) in the network's dtype (one-hot rows for classes)."""
        return np.ascontiguousarray(y, dtype=self._net.dtype)

    def _callbacks(self, total: int) -> list[Callback]:
        callbacks = list(self.callbacks or ())
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"callbacks must be betaprop.Callback instances, got {callback!r}")
        if isinstance(self.verbose, str) and self.verbose == "progress":
            callbacks.append(ProgressBar(total, type(self).__name__))
        return callbacks

    def _batch_rows(self, n: int) -> int:
        """Rows per mini-batch for n examples: scikit-learn's "auto" (200), else batch_size,
        at most n."""
        return min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))

    def _stratify_for_scoring(self, y: Array) -> bool:
        """Stratify the early-stopping split of a multiclass target when ``scoring`` is set.

        scikit-learn stratifies only binary targets; a random 10 % of a multiclass target can
        miss a class, which breaks probability scorers such as neg_log_loss. Stratified only
        where it can be: one-hot rows (not multi-label) and at least 2 examples per class.
        """
        if self.scoring is None or getattr(self._label_binarizer, "y_type_", "") != "multiclass":
            return False
        return bool(np.asarray(y).sum(axis=0).min() >= 2)

    def _mean_loss(self, X: Any, D: Array, w: Array | None) -> float:
        """The (weighted) mean loss on a data set, as ``loss_curve_`` reports it, without L2."""
        return mean_loss(self._net, X, D, w)

    def _validation_score(self, X: Any, y: Any, sample_weight: Any) -> float:
        if self.scoring is None:
            return self._score(X, y, sample_weight=sample_weight)
        scorer = check_scoring(self, scoring=self.scoring)
        if sample_weight is None:
            return float(scorer(self, X, y))
        return float(scorer(self, X, y, sample_weight=sample_weight))

    # ------------------------------------------------------------ prediction
    def _predicting_net(self, X: Any) -> Network:
        """The network that predicts X: in the result dtype of X and the weights, as
        scikit-learn (float64 input to a float32-fitted model gives float64), unless
        ``dtype`` was set: then in that dtype."""
        self._apply_assigned_layers()  # an item assigned into coefs_ / intercepts_ counts
        net = self._net
        if self.dtype is not None:
            return net
        dtype = np.result_type(X.dtype, net.dtype)
        if dtype == net.dtype or dtype not in (np.float32, np.float64):
            return net
        return net.astype(dtype.name)

    def _layer_output(self, X: Any, layer: int) -> Array:
        """Step 2 on X (validated), chunk by chunk: y^layer as an (n, N_layer) array."""
        net = self._predicting_net(X)
        X = input_rows(net, X)
        out = np.empty((X.shape[0], net.sizes[layer]), dtype=net.dtype)
        for start in range(0, X.shape[0], CHUNK):
            x = X if X.shape[0] <= CHUNK else input_rows(net, X[start : start + CHUNK])
            net.forward_columns(x.T)  # (one chunk: X itself, as a sparse slice is a copy)
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
            net = self._predicting_net(X)
            return np.asarray(X.toarray() if sp.issparse(X) else X, dtype=net.dtype)
        return self._layer_output(X, int(layer))

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Array:
        """Fit, then return ``transform(X)``: the last hidden layer's y^{Q-1}."""
        return self.fit(X, y, **fit_params).transform(X)

    @property
    def _n_features_out(self) -> int:
        """Width of ``transform``'s default output (``get_feature_names_out``, set_output)."""
        net = self._fitted_net()
        return net.sizes[net.Q - 1 if net.Q > 1 else net.Q]

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
        # float32 trains (and transforms) in float32 except with lbfgs, as scikit-learn
        float32 = self._stochastic() or self.dtype is not None
        preserved = ["float64", "float32"] if float32 else ["float64"]
        tags.transformer_tags = TransformerTags(preserves_dtype=preserved)
        return tags
