"""scikit-learn's ``MLPClassifier`` on betaprop: softmax + cross-entropy for multiclass
targets, sigmoid + binary cross-entropy for binary and multi-label ones."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.metrics import accuracy_score
from sklearn.neural_network import MLPClassifier as sklearn_MLPClassifier
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import column_or_1d
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, validate_data

from .base import BaseMLP
from .params import estimator_docstring

__all__ = ["MLPClassifier"]

Array = np.ndarray


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multi-layer perceptron classifier, scikit-learn's ``MLPClassifier`` on betaprop.

    Same parameters, defaults, attributes and methods as
    ``sklearn.neural_network.MLPClassifier`` (scikit-learn 1.9): softmax + cross-entropy
    for multiclass targets, sigmoid + binary cross-entropy for binary and multi-label ones.

    Extra parameters: ``class_weight`` (dict, "balanced" or None, as in scikit-learn's
    linear models; multiplies ``sample_weight``), ``scoring``, ``callbacks``, ``dtype``,
    ``batch_norm``, ``dropout``, ``init``, ``layer_norm``, ``residual``.
    """

    _parameter_constraints: dict = {
        **BaseMLP._parameter_constraints,
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
        batch_norm: bool = False,
        dropout: float = 0.0,
        init: Any = None,
        layer_norm: bool = False,
        residual: bool = False,
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
        if self._first_partial_fit(classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)

    def _first_partial_fit(self, classes: Any) -> bool:
        """Is this the first call of ``partial_fit``? Then ``classes_`` is set from ``classes``
        (scikit-learn's ``_check_partial_fit_first_call``, with its messages)."""
        if getattr(self, "classes_", None) is None and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is None:
            return False
        if getattr(self, "classes_", None) is not None:
            if not np.array_equal(self.classes_, unique_labels(classes)):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on last call "
                    f"to partial_fit, was: {self.classes_!r}"
                )
            return False
        self.classes_ = unique_labels(classes)
        return True

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


MLPClassifier.__doc__ = estimator_docstring(MLPClassifier, sklearn_MLPClassifier)
