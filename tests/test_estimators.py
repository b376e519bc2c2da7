"""Behaviour of betaprop's MLPClassifier / MLPRegressor: the scikit-learn API and what it lacks."""

from __future__ import annotations

import inspect
import pickle
import signal
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import neural_network as sk
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

import betaprop as bp
from betaprop import MLPClassifier, MLPRegressor

X_IRIS, Y_IRIS = load_iris(return_X_y=True)
X_IRIS = StandardScaler().fit_transform(X_IRIS)
SHARED_EXTRAS = ["scoring", "callbacks", "dtype", "batch_norm", "dropout", "init", "layer_norm",
                 "residual"]  # fmt: skip
EXTRAS = {MLPClassifier: ["class_weight", *SHARED_EXTRAS], MLPRegressor: SHARED_EXTRAS}
# issues 12's and 23's switches default to "off" in their own type (False, 0.0), the others
# to None
OFF = {"batch_norm": False, "dropout": 0.0, "layer_norm": False, "residual": False}


def _quiet(estimator, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(*args, **kwargs)


# ------------------------------------------------------------------ drop-in
@pytest.mark.parametrize(
    ("ours", "theirs"), [(MLPClassifier, sk.MLPClassifier), (MLPRegressor, sk.MLPRegressor)]
)
def test_constructor_matches_scikit_learn(ours, theirs) -> None:
    """Same names, order, kinds and defaults; betaprop's extras come last, keyword-only, None."""
    mine = list(inspect.signature(ours).parameters.values())
    reference = list(inspect.signature(theirs).parameters.values())
    assert [(p.name, p.kind, p.default) for p in mine[: len(reference)]] == [
        (p.name, p.kind, p.default) for p in reference
    ]
    extras = mine[len(reference) :]
    assert [p.name for p in extras] == EXTRAS[ours]
    off = [OFF.get(p.name) for p in extras]  # None, or False / 0.0 for issue 12's
    assert all(p.kind is p.KEYWORD_ONLY for p in extras)
    assert [(p.default, type(p.default)) for p in extras] == [(v, type(v)) for v in off]


def test_fitted_attributes_match_scikit_learn_layout() -> None:
    ours = _quiet(
        MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=5, random_state=0), X_IRIS, Y_IRIS
    )
    theirs = _quiet(
        sk.MLPClassifier(hidden_layer_sizes=(6, 5), max_iter=5, random_state=0), X_IRIS, Y_IRIS
    )
    for name in ("n_layers_", "n_outputs_", "out_activation_", "n_features_in_", "n_iter_", "t_"):
        assert getattr(ours, name) == getattr(theirs, name), name
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert [c.shape for c in ours.coefs_] == [c.shape for c in theirs.coefs_]
    assert [b.shape for b in ours.intercepts_] == [b.shape for b in theirs.intercepts_]
    assert len(ours.loss_curve_) == ours.n_iter_ == 5
    assert ours.best_loss_ == min(ours.loss_curve_) and ours.loss_ == ours.loss_curve_[-1]
    assert ours.validation_scores_ is None and ours.best_validation_score_ is None
    # coefs_ are views of the network's W^q (transposed): writing one changes the model
    net = ours._net
    assert np.shares_memory(ours.coefs_[0], net.W[1])
    np.testing.assert_array_equal(ours.coefs_[1], net.W[2].T)


@pytest.mark.parametrize(
    ("y", "out_activation"),
    [
        (Y_IRIS, "softmax"),
        (np.array(["a", "b"])[(Y_IRIS > 0).astype(int)], "logistic"),
        (np.column_stack([Y_IRIS == 0, Y_IRIS == 2, X_IRIS[:, 0] > 0]).astype(int), "logistic"),
    ],
    ids=["multiclass", "binary-strings", "multilabel"],
)
def test_classifier_targets(y, out_activation) -> None:
    clf = _quiet(MLPClassifier(max_iter=30, random_state=0), X_IRIS, y)
    assert clf.out_activation_ == out_activation
    proba = clf.predict_proba(X_IRIS)
    predicted = clf.predict(X_IRIS)
    assert predicted.shape == np.shape(y) and predicted.dtype == np.asarray(y).dtype
    if out_activation == "softmax" or np.ndim(y) == 1:
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(clf.predict_log_proba(X_IRIS), np.log(proba))
    assert clf.score(X_IRIS, y) > 0.6


def test_regressor_multi_output_and_poisson() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 4))
    Y = np.column_stack([X @ [1.0, -2.0, 0.5, 0.0], np.sin(X[:, 0])])
    settings = dict(solver="lbfgs", hidden_layer_sizes=(16,), max_iter=100, random_state=0)
    reg = _quiet(MLPRegressor(**settings), X, Y)
    assert reg.predict(X).shape == (200, 2) and reg.out_activation_ == "identity"
    assert reg.score(X, Y) > 0.9
    counts = rng.poisson(np.exp(0.5 * X[:, 0]))
    poisson = _quiet(MLPRegressor(loss="poisson", **settings), X, counts)
    assert poisson.out_activation_ == "exp" and (poisson.predict(X) > 0).all()
    with pytest.raises(ValueError, match=r"y must be >= 0 for loss='poisson'"):
        MLPRegressor(loss="poisson").fit(X, counts - 5.0)


@pytest.mark.parametrize(
    ("X_dtype", "dtype", "expected"),
    [
        (np.float32, None, np.float32),
        (np.float64, None, np.float64),
        (np.float64, "float32", np.float32),
        (np.float32, "float64", np.float64),
    ],
)
def test_dtype_follows_the_input_or_the_dtype_parameter(X_dtype, dtype, expected) -> None:
    clf = _quiet(MLPClassifier(max_iter=3, dtype=dtype), X_IRIS.astype(X_dtype), Y_IRIS)
    assert all(c.dtype == expected for c in clf.coefs_ + clf.intercepts_)
    assert clf.predict_proba(X_IRIS.astype(X_dtype)).dtype == expected


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_sparse_input_gives_the_dense_result(solver) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 8)) * (rng.random((60, 8)) > 0.6)
    y = rng.integers(0, 3, 60)
    dense = _quiet(MLPClassifier(solver=solver, max_iter=20, random_state=3), X, y)
    for matrix in (sp.csr_matrix, sp.csc_matrix):
        sparse = _quiet(MLPClassifier(solver=solver, max_iter=20, random_state=3), matrix(X), y)
        np.testing.assert_allclose(
            sparse.predict_proba(matrix(X)), dense.predict_proba(X), rtol=1e-9
        )


def test_partial_fit_is_one_epoch_per_call() -> None:
    clf = MLPClassifier(random_state=0)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        clf.partial_fit(X_IRIS, Y_IRIS)
    clf.partial_fit(X_IRIS[:80], Y_IRIS[:80], classes=[0, 1, 2])
    clf.partial_fit(X_IRIS[80:], Y_IRIS[80:])
    assert clf.n_iter_ == 1 and clf.t_ == 150 and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="`y` has classes not in `self.classes_`"):
        clf.partial_fit(X_IRIS, Y_IRIS + 1)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping=True"):
        MLPClassifier(early_stopping=True).partial_fit(X_IRIS, Y_IRIS, classes=[0, 1, 2])
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="class_weight must be a dict or None for partial_fit"):
        MLPClassifier(class_weight="balanced").partial_fit(X_IRIS, Y_IRIS, classes=[0, 1, 2])


class _Recorder(bp.Callback):
    """Records the parameters at the start and after every epoch."""

    def __init__(self, stop_after: int | None = None, interrupt_after: int | None = None):
        self.begin: list[np.ndarray] = []
        self.epochs: list[np.ndarray] = []
        self.stop_after, self.interrupt_after = stop_after, interrupt_after

    def on_train_begin(self, net, history) -> None:
        self.begin.append(net.params.copy())

    def on_epoch_end(self, net, epoch, history):
        self.epochs.append(net.params.copy())
        if self.interrupt_after is not None and len(self.epochs) == self.interrupt_after:
            raise KeyboardInterrupt
        return self.stop_after is not None and len(self.epochs) >= self.stop_after


def test_warm_start_continues_from_the_fitted_weights() -> None:
    recorder = _Recorder()
    clf = MLPClassifier(max_iter=2, warm_start=True, random_state=0, callbacks=[recorder])
    _quiet(clf, X_IRIS, Y_IRIS)
    after_first = clf._net.params.copy()
    _quiet(clf, X_IRIS, Y_IRIS)
    np.testing.assert_array_equal(recorder.begin[1], after_first)
    assert len(clf.loss_curve_) == 4
    with pytest.raises(ValueError, match="warm_start can only be used where `y` has the same"):
        clf.fit(X_IRIS, Y_IRIS % 2)
    cold = MLPClassifier(max_iter=2, random_state=0, callbacks=[recorder := _Recorder()])
    _quiet(cold, X_IRIS, Y_IRIS)
    _quiet(cold, X_IRIS, Y_IRIS)
    np.testing.assert_array_equal(recorder.begin[0], recorder.begin[1])  # same seed, fresh start


def test_early_stopping_restores_the_best_weights() -> None:
    recorder = _Recorder()
    clf = MLPClassifier(
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=200,
        learning_rate_init=0.05,
        random_state=0,
        callbacks=[recorder],
    )
    _quiet(clf, X_IRIS, Y_IRIS)
    scores = clf.validation_scores_
    assert len(scores) == len(clf.validation_loss_curve_) == clf.n_iter_ == len(recorder.epochs)
    best = int(np.argmax(scores))  # first epoch reaching the best score
    assert clf.best_validation_score_ == scores[best] and clf.best_loss_ is None
    np.testing.assert_array_equal(clf._net.params, recorder.epochs[best])
    assert best < clf.n_iter_ - 1  # it did stop after the best epoch and roll back


def test_convergence_warnings() -> None:
    with pytest.warns(ConvergenceWarning, match=r"Stochastic Optimizer: Maximum iterations \(3\)"):
        MLPClassifier(max_iter=3).fit(X_IRIS, Y_IRIS)
    with pytest.warns(ConvergenceWarning, match="lbfgs failed to converge after 3 iteration"):
        MLPClassifier(solver="lbfgs", max_iter=3).fit(X_IRIS, Y_IRIS)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_ctrl_c_ends_fit_with_a_usable_model(early_stopping) -> None:
    recorder = _Recorder(interrupt_after=6)
    clf = MLPClassifier(
        max_iter=50,
        random_state=0,
        learning_rate_init=0.05,
        early_stopping=early_stopping,
        callbacks=[recorder],
    )
    with pytest.warns(bp.InterruptedWarning, match="Training interrupted by user."):
        clf.fit(X_IRIS, Y_IRIS)
    assert len(recorder.epochs) == 6 and clf.score(X_IRIS, Y_IRIS) > 0.5
    if early_stopping:
        best = int(np.argmax(clf.validation_scores_))
        np.testing.assert_array_equal(clf._net.params, recorder.epochs[best])
    else:
        np.testing.assert_array_equal(clf._net.params, recorder.epochs[-1])


def test_ctrl_c_in_lbfgs_keeps_the_best_point() -> None:
    recorder = _Recorder(interrupt_after=5)
    clf = MLPClassifier(solver="lbfgs", max_iter=100, random_state=0, callbacks=[recorder])
    with pytest.warns(bp.InterruptedWarning, match="Training interrupted by user."):
        clf.fit(X_IRIS, Y_IRIS)
    assert clf.n_iter_ == 5 and np.isfinite(clf.loss_)
    assert clf.loss_ <= float(log_loss(Y_IRIS, clf.predict_proba(X_IRIS))) + 1e-3  # L2 term only


def test_callbacks_see_every_epoch_and_can_stop() -> None:
    recorder = _Recorder(stop_after=4)
    reg = MLPRegressor(max_iter=100, random_state=0, callbacks=[recorder])
    reg.fit(X_IRIS[:, :3], X_IRIS[:, 3])
    assert reg.n_iter_ == 4 and len(recorder.epochs) == 4
    with pytest.raises(TypeError, match="callbacks must be betaprop.Callback instances"):
        MLPRegressor(callbacks=[print]).fit(X_IRIS[:, :3], X_IRIS[:, 3])


def test_pickle_and_clone() -> None:
    clf = _quiet(MLPClassifier(max_iter=5, random_state=0), X_IRIS, Y_IRIS)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X_IRIS), clf.predict_proba(X_IRIS))
    again.coefs_[0][0, 0] += 1.0  # views of the restored network, independent of the original
    assert again.coefs_[0][0, 0] != clf.coefs_[0][0, 0]
    assert "_net" in clf.__dict__  # pickling did not strip the live estimator
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "coefs_")


def test_sample_weight_equals_repeated_rows_for_lbfgs() -> None:
    counts = np.random.default_rng(0).integers(1, 4, 150)
    settings = dict(solver="lbfgs", max_iter=40, random_state=0, hidden_layer_sizes=(8,))
    weighted = _quiet(MLPClassifier(**settings), X_IRIS, Y_IRIS, sample_weight=counts)
    repeated = _quiet(
        MLPClassifier(**settings), np.repeat(X_IRIS, counts, axis=0), np.repeat(Y_IRIS, counts)
    )
    np.testing.assert_allclose(weighted.loss_, repeated.loss_, rtol=1e-6)
    np.testing.assert_allclose(
        weighted.predict_proba(X_IRIS), repeated.predict_proba(X_IRIS), atol=1e-5
    )


def test_class_weight_is_a_sample_weight_per_class() -> None:
    settings = dict(solver="lbfgs", max_iter=20, random_state=0, hidden_layer_sizes=(8,))
    by_class = _quiet(MLPClassifier(class_weight={0: 3.0, 2: 0.5}, **settings), X_IRIS, Y_IRIS)
    by_sample = _quiet(
        MLPClassifier(**settings),
        X_IRIS,
        Y_IRIS,
        sample_weight=np.array([3.0, 1.0, 0.5])[Y_IRIS],
    )
    np.testing.assert_allclose(by_class.coefs_[0], by_sample.coefs_[0], rtol=1e-12)
    balanced = _quiet(
        MLPClassifier(class_weight="balanced", **settings), X_IRIS[:120], Y_IRIS[:120]
    )
    assert balanced.score(X_IRIS[:120], Y_IRIS[:120]) > 0.8


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"alpha": -1}, r"The 'alpha' parameter of MLPClassifier must be a float in the range"),
        ({"solver": "newton"}, r"The 'solver' parameter .* must be a str among .*'rmsprop'"),
        ({"activation": "swish"}, r"The 'activation' parameter .* must be a str among .*'gelu'"),
        ({"learning_rate": "fast"}, r"The 'learning_rate' parameter"),
        ({"dtype": "float16"}, r"The 'dtype' parameter"),
        ({"scoring": "nope"}, r"The 'scoring' parameter"),
    ],
)
def test_bad_parameters_raise_at_fit_not_in_init(params, message) -> None:
    clf = MLPClassifier(**params)  # __init__ and set_params only store
    clf.set_params(**params)
    with pytest.raises(InvalidParameterError, match=message):
        clf.fit(X_IRIS, Y_IRIS)


def test_bad_activation_lists_and_layers() -> None:
    with pytest.raises(ValueError, match=r"activation must be one name or a list of one name per"):
        MLPClassifier(hidden_layer_sizes=(4, 3), activation=["relu"]).fit(X_IRIS, Y_IRIS)
    with pytest.raises(
        ValueError, match=r"activation must be one of \[.*'tanh'.*\], got 'softmax'"
    ):
        MLPClassifier(hidden_layer_sizes=(4,), activation=["softmax"]).fit(X_IRIS, Y_IRIS)
    clf = _quiet(MLPClassifier(hidden_layer_sizes=(4, 3), max_iter=2), X_IRIS, Y_IRIS)
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, Q\] = \[0, 3\], got 4"):
        clf.transform(X_IRIS, layer=4)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X_IRIS[:, :3])


# ------------------------------------------------------------------ beyond scikit-learn
def test_per_layer_activations_and_betaprop_optimizers() -> None:
    for solver in ("adamw", "rmsprop", bp.optimizers.RMSprop(0.01, centered=True)):
        clf = _quiet(
            MLPClassifier(
                hidden_layer_sizes=(16, 8),
                activation=["leaky_relu", "gelu"],
                solver=solver,
                learning_rate_init=0.01,
                max_iter=40,
                random_state=0,
            ),
            X_IRIS,
            Y_IRIS,
        )
        assert clf.to_network().activations == ["leaky_relu", "gelu", "softmax"]
        assert clf.score(X_IRIS, Y_IRIS) > 0.85, solver


def test_transform_is_the_hidden_representation() -> None:
    clf = _quiet(
        MLPClassifier(hidden_layer_sizes=(6, 4), activation="tanh", max_iter=5, random_state=0),
        X_IRIS,
        Y_IRIS,
    )
    W, b = clf.coefs_, clf.intercepts_
    y1 = np.tanh(X_IRIS @ W[0] + b[0])  # the textbook forward pass, written out
    y2 = np.tanh(y1 @ W[1] + b[1])
    np.testing.assert_allclose(clf.transform(X_IRIS, layer=1), y1, rtol=1e-12)
    np.testing.assert_allclose(clf.transform(X_IRIS), y2, rtol=1e-12)  # default: last hidden
    np.testing.assert_allclose(clf.transform(X_IRIS, layer=0), X_IRIS)
    np.testing.assert_allclose(clf.transform(X_IRIS, layer=3), clf.predict_proba(X_IRIS))
    net = clf.to_network()
    np.testing.assert_allclose(net.predict(X_IRIS), clf.predict_proba(X_IRIS), rtol=1e-12)
    net.params[:] = 0.0  # a copy: the estimator is unchanged
    assert np.abs(clf.coefs_[0]).sum() > 0


def test_beta_history_is_the_size_of_the_local_errors() -> None:
    """First epoch, one full batch: beta^Q = (P - D)/n and beta^1 = f'(s^1) ⊙ W^2.T beta^2."""
    recorder = _Recorder()
    clf = MLPClassifier(
        hidden_layer_sizes=(5,),
        batch_size=150,
        shuffle=False,
        max_iter=3,
        random_state=0,
        callbacks=[recorder],
    )
    _quiet(clf, X_IRIS, Y_IRIS)
    assert np.shape(clf.beta_history_) == (3, 2)
    net = clf.to_network()
    net.params[:] = recorder.begin[0]
    W1, b1, W2, b2 = net.W[1].T, net.b[1][:, 0], net.W[2].T, net.b[2][:, 0]
    s1 = X_IRIS @ W1 + b1
    s2 = np.maximum(s1, 0) @ W2 + b2
    P = np.exp(s2 - s2.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    error2 = P - np.eye(3)[Y_IRIS]  # per-example beta^2
    error1 = (error2 @ W2.T) * (s1 > 0)
    expected = [np.sqrt(np.mean(error1**2)), np.sqrt(np.mean(error2**2))]
    np.testing.assert_allclose(clf.beta_history_[0], expected, rtol=1e-10)


def test_scoring_and_validation_loss_curve() -> None:
    clf = _quiet(
        MLPClassifier(
            early_stopping=True,
            scoring="neg_log_loss",
            max_iter=30,
            random_state=0,
            learning_rate_init=0.01,
        ),
        X_IRIS,
        Y_IRIS,
    )
    assert (
        clf.best_validation_score_ == max(clf.validation_scores_) and clf.validation_scores_[0] < 0
    )
    assert all(np.isfinite(clf.validation_loss_curve_))
    # with alpha = 0 the validation loss is exactly minus the neg_log_loss score
    clf0 = _quiet(
        MLPClassifier(
            early_stopping=True, scoring="neg_log_loss", alpha=0.0, max_iter=10, random_state=0
        ),
        X_IRIS,
        Y_IRIS,
    )
    np.testing.assert_allclose(clf0.validation_loss_curve_, -np.array(clf0.validation_scores_))
    # the weighted mean loss, against scikit-learn's log_loss on the same predictions
    w = np.random.default_rng(0).uniform(0.5, 2.0, 150)
    D = np.eye(3)[Y_IRIS]
    proba = clf0.predict_proba(X_IRIS)
    assert clf0._mean_loss(X_IRIS, D, w) == pytest.approx(log_loss(Y_IRIS, proba, sample_weight=w))


def test_scoring_stratifies_a_multiclass_validation_split() -> None:
    """With scoring= every class reaches the validation set (neg_log_loss needs them all).

    The random split scikit-learn uses for multiclass targets misses a class of iris in
    about 0.7 % of seeds; here 300 seeds, each must see 3 classes.
    """
    for seed in range(300):
        clf = MLPClassifier(
            hidden_layer_sizes=(3,),
            early_stopping=True,
            scoring="neg_log_loss",
            max_iter=1,
            random_state=seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X_IRIS, Y_IRIS)
        assert np.isfinite(clf.validation_scores_[0])


def test_verbose_progress_shows_a_progress_bar(capsys) -> None:
    """verbose=True prints scikit-learn's lines (tests/test_estimators_dropin.py); the
    progress bar is the extra option verbose="progress"."""
    _quiet(MLPRegressor(max_iter=3, verbose="progress"), X_IRIS[:, :3], X_IRIS[:, 3])
    captured = capsys.readouterr()
    assert captured.out == ""  # library code never prints to stdout
    assert "MLPRegressor" in captured.err and "3/3" in captured.err


def test_adaptive_learning_rate_matches_scikit_learn() -> None:
    """tol so large that no epoch improves: lr /5 every n_iter_no_change + 1 epochs, then stop."""
    settings = dict(
        solver="sgd", learning_rate="adaptive", tol=1e3, n_iter_no_change=2, max_iter=200
    )
    ours = MLPRegressor(random_state=0, **settings).fit(X_IRIS[:, :3], X_IRIS[:, 3])
    theirs = sk.MLPRegressor(random_state=0, **settings).fit(X_IRIS[:, :3], X_IRIS[:, 3])
    assert ours.n_iter_ == theirs.n_iter_
    assert ours._opt_state["lr"] == pytest.approx(theirs._optimizer.learning_rate, rel=1e-12)


class _SigintMidEpoch(bp.Callback):
    def on_batch_end(self, net, epoch, batch, loss):
        if epoch == 3 and batch == 2:
            signal.raise_signal(signal.SIGINT)  # a real Ctrl-C, delivered mid-epoch


def test_a_real_sigint_mid_epoch_leaves_a_usable_model() -> None:
    clf = MLPClassifier(batch_size=20, max_iter=50, random_state=0, callbacks=[_SigintMidEpoch()])
    with pytest.warns(bp.InterruptedWarning, match="Training interrupted by user."):
        clf.fit(X_IRIS, Y_IRIS)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2  # the cut epoch is not counted
    assert np.isfinite(clf._net.params).all() and clf.predict(X_IRIS).shape == (150,)


def test_non_finite_weights_raise_scikit_learns_value_error() -> None:
    """scikit-learn's own test_nonfinite_params: code catching ValueError still works."""
    rng = np.random.RandomState(0)
    X = np.finfo(np.float64).max * rng.uniform(size=(10, 2))
    y = rng.standard_normal(size=10)
    message = (
        "Solver produced non-finite parameter weights. The input data may contain large "
        "values and need to be preprocessed."
    )
    with pytest.raises(ValueError, match=message):
        MLPRegressor().fit(X, y)
    with pytest.raises(ValueError, match=message):
        sk.MLPRegressor().fit(X, y)  # the oracle: the same text


class _BlasThreads(bp.Callback):
    def on_epoch_end(self, net, epoch, history):
        from threadpoolctl import threadpool_info

        self.threads = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


def test_small_problems_train_with_one_blas_thread(monkeypatch) -> None:
    from threadpoolctl import threadpool_info

    before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    seen = _BlasThreads()
    _quiet(MLPClassifier(max_iter=2, callbacks=[seen]), X_IRIS, Y_IRIS)
    assert seen.threads == {1}
    assert [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] == before
    monkeypatch.setattr(bp.estimators, "SINGLE_THREAD_BELOW", 100)  # now iris counts as big
    big = _BlasThreads()
    _quiet(MLPClassifier(max_iter=2, callbacks=[big]), X_IRIS, Y_IRIS)
    assert big.threads == set(before)
