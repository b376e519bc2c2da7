"""scikit-learn's ``MLPRegressor`` on betaprop: identity output with the (half) squared
error, or exp output with the half Poisson deviance."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.neural_network import MLPRegressor as sklearn_MLPRegressor
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data

from .base import BaseMLP
from .params import estimator_docstring

__all__ = ["MLPRegressor"]

Array = np.ndarray


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multi-layer perceptron regressor, scikit-learn's ``MLPRegressor`` on betaprop.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPRegressor`` (scikit-learn 1.9): identity output with the
    (half) squared error, or exp output with the half Poisson deviance (``loss="poisson"``,
    y >= 0).

    Extra parameters: ``scoring``, ``callbacks``, ``dtype``,
    ``batch_norm``, ``dropout``, ``init``, ``layer_norm``, ``residual``.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
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
        batch_norm: bool = False,
        dropout: float = 0.0,
        init: Any = None,
        layer_norm: bool = False,
        residual: bool = False,
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


MLPRegressor.__doc__ = estimator_docstring(MLPRegressor, sklearn_MLPRegressor)
